"""The fault proxy is a reverse proxy: a ``Location`` that names the store behind it is
answered as the same place on the proxy, so a client that follows it (a GCS resumable upload
sends every chunk to its session's ``Location``) stays behind the proxy and its faults.

The store here is a stdlib HTTP server on loopback that answers every request with one
``Location``; a ``Location`` elsewhere passes unchanged.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from devenv.faultproxy import FaultProxy


class _Store(BaseHTTPRequestHandler):
    location = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _Store)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _location(proxy: FaultProxy, answered: str) -> str | None:
    _Store.location = answered
    host, port = proxy.endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("POST", "/upload/storage/v1/b/bucket/o?uploadType=resumable", body=b"{}")
        response = connection.getresponse()
        response.read()
        return response.getheader("Location")
    finally:
        connection.close()


def test_a_location_naming_the_store_is_answered_as_the_proxy(upstream: HTTPServer) -> None:
    store = f"http://127.0.0.1:{upstream.server_address[1]}"
    session = "/upload/storage/v1/b/bucket/o?uploadType=resumable&upload_id=abc"
    with FaultProxy(store) as proxy:
        assert _location(proxy, store + session) == proxy.endpoint + session
        assert _location(proxy, "https://elsewhere.example/x") == "https://elsewhere.example/x"
        assert _location(proxy, f"{store}0/x") == f"{store}0/x"  # another port that starts alike
