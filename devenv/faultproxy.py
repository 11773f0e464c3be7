"""A fault-injecting HTTP proxy for S3 on loopback: the faults a network and a store really have.

pgbackup talks to it through ``AWS_ENDPOINT_URL_S3`` exactly as to the store behind it; every
request is forwarded unchanged except the ones a ``Fault`` matches (by method and a regular
expression over the path and query). Actions:

- ``applied-500``: forward the request, so the store applies it, then answer 500: the client
  cannot know the write happened (and the SDK retries it);
- ``applied-reset``: forward it, then drop the connection without an answer;
- ``deny``: answer 403 AccessDenied without forwarding (write-only credentials on reads);
- ``answer``: answer ``status`` with the S3 error ``code`` without forwarding (for example
  the 412 PreconditionFailed a store that enforces ``If-None-Match`` gives a retry);
- ``stall``: hold the request for ``seconds`` (bounded) before forwarding it, or answering
  nothing at all when ``forward`` is False;
- ``corrupt``: flip one byte of the request body on the way (a damaged part in transit);
  with ``strip``, headers are dropped too (``Content-MD5``, for a store that ignores it), and
  with ``unsigned`` the request is signed anew with ``UNSIGNED-PAYLOAD`` and the test key, as
  the SDK signs over HTTPS: over plain HTTP it signs the payload's SHA-256, which SeaweedFS
  checks, and which would catch the flipped byte before any checksum could; with ``report``
  (``crc32``, ``sha256``) the store's answer gains the ``x-amz-checksum-<report>`` header that
  a store computing its own checksum of what it received sends unasked, over the altered bytes
  (neither moto nor SeaweedFS reports one to a request that carries no checksum header);
- ``truncate``: forward only the first half of the request body (a part cut short on the way);
- ``reset``: drop the connection with a TCP reset, forwarding nothing;
- ``flip-answer``: forward the request, then flip one byte of the store's answer body;
- ``cut-answer``: forward the request, then send the answer's full ``Content-Length`` but only
  half of its body and close the connection (a download cut off mid-way);
- ``rewrite``: forward the request, then pass the store's answer body through ``rewrite``
  (a listing with a key left out, or a bit of a key flipped).

A fault with ``carrying`` hits only requests with that header (a store that rejects a
header, or a GCS resumable upload's final chunk, the one with ``x-goog-hash``). ``seen`` keeps
every request's headers, lowercased.

As a reverse proxy does, it rewrites a ``Location`` the store answers with that points at the
store itself into the same place on the proxy: a GCS resumable upload's session URI is such a
``Location``, and the chunks sent to it must pass the proxy too.

It listens on 127.0.0.1 only, every socket has a timeout, and ``stop`` ends stalls at once,
so a test that forgets a fault still ends.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import socket
import struct
import sys
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
SOCKET_TIMEOUT = 60.0
MAX_STALL = 120.0
POLL = 0.02  # seconds between the server's checks for a stop


@dataclass
class Fault:
    """One fault: which requests it hits, what it does, and how many times."""

    method: str
    path: str  # a regular expression searched in the request's path and query
    action: str  # applied-500 | applied-reset | deny | answer | stall | corrupt | truncate | reset
    #              | flip-answer | cut-answer | rewrite
    times: int | None = 1  # None: every matching request
    seconds: float = 0.0  # for stall
    forward: bool = True  # for stall: forward afterwards, or never answer
    status: int = 412  # for answer
    code: str = "PreconditionFailed"  # for answer
    rewrite: Callable[[bytes], bytes] | None = None  # for rewrite: the answer's body, changed
    strip: tuple[str, ...] = ()  # for corrupt: request headers dropped (lowercase name prefixes)
    unsigned: bool = False  # for corrupt: sign anew without the payload's hash, as over HTTPS
    report: str = ""  # for corrupt: the checksum (crc32 | sha256) the answer reports of the altered bytes
    carrying: str = ""  # hit only requests with this header (lowercase)
    hits: list[str] = field(default_factory=list)  # the requests it hit

    def matches(self, method: str, path: str) -> bool:
        return (
            self.method in ("*", method)
            and re.search(self.path, path) is not None
            and (self.times is None or len(self.hits) < self.times)
        )


class FaultProxy:
    """The proxy, its faults, and a log of every request it saw."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.upstream_url = f"{parts.scheme or 'http'}://{parts.netloc}"
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []  # method, path, status sent back
        self.seen: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers as received
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        # serve_forever checks for shutdown every poll_interval (0.5 s by default): each stop waited that long
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL}, name="fault-proxy", daemon=True
        )

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Forget every fault (a request already taken by one still suffers it)."""
        with self._lock:
            self.faults.clear()

    def local(self, location: str) -> str:
        """A ``Location`` naming the upstream, as the same place on the proxy; others unchanged."""
        rest = location[len(self.upstream_url) :]
        if location.startswith(self.upstream_url) and rest[:1] in ("", "/", "?"):
            return self.endpoint + rest
        return location

    def take(self, method: str, path: str, headers: dict[str, str]) -> Fault | None:
        with self._lock:
            self.seen.append((method, path, headers))
            for fault in self.faults:
                if (not fault.carrying or fault.carrying in headers) and fault.matches(method, path):
                    fault.hits.append(f"{method} {path}")
                    return fault
        return None

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (timed out, was killed) is what faults are for: no traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


def _error_body(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'.encode()
    )


def _signed_unsigned(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    """``headers`` signed anew with the test key and ``UNSIGNED-PAYLOAD``, as the SDK signs a
    request with a checksum over HTTPS."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    from .s3 import ACCESS_KEY, REGION, SECRET_KEY

    signature = ("authorization", "x-amz-date", "x-amz-content-sha256")
    kept = {k: v for k, v in headers.items() if k.lower() not in signature}
    request = AWSRequest(method=method, url=f"http://{headers.get('Host', '127.0.0.1')}{path}", headers=kept, data=body)
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION).add_auth(request)
    return dict(request.headers.items())


def _reporting(headers: list[tuple[str, str]], algorithm: str, body: bytes) -> list[tuple[str, str]]:
    """An answer's headers with the store's own ``algorithm`` checksum of ``body`` in S3's form."""
    raw = zlib.crc32(body).to_bytes(4, "big") if algorithm == "crc32" else hashlib.new(algorithm, body).digest()
    name = f"x-amz-checksum-{algorithm}"
    return [(k, v) for k, v in headers if k.lower() != name] + [(name, base64.b64encode(raw).decode())]


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = SOCKET_TIMEOUT

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read proxy.requests
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes, cut: bool = False) -> None:
            # Recorded before the answer goes out, so a client holding its answer finds it recorded.
            proxy.requests.append((self.command, self.path, status))
            self.send_response(status)
            head = self.command == "HEAD"  # its Content-Length is the object's, with no body sent
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP and (head or name.lower() != "content-length"):
                    self.send_header(name, value)
            if not head or not any(name.lower() == "content-length" for name, _ in headers):
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body[: len(body) // 2] if cut else body)
            if cut:  # the promised length never arrives: the client sees the connection end early
                self.close_connection = True

        def _forward(self, body: bytes, fault: Fault | None) -> tuple[int, list[tuple[str, str]], bytes]:
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=SOCKET_TIMEOUT)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                if fault is not None and fault.action == "corrupt":
                    headers = {
                        k: v
                        for k, v in headers.items()
                        if not any(k.lower().startswith(prefix) for prefix in fault.strip)
                    }
                    if fault.unsigned:
                        headers = _signed_unsigned(self.command, self.path, headers, body)
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                answered = [
                    (name, proxy.local(value) if name.lower() == "location" else value)
                    for name, value in response.getheaders()
                ]
                return response.status, answered, response.read()
            finally:
                upstream.close()

        def _reset(self) -> None:
            """Close the client's connection with a TCP reset, answering nothing."""
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            proxy.requests.append((self.command, self.path, 0))

        def _handle(self) -> None:
            body = self._body()
            fault = proxy.take(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            action = fault.action if fault else "forward"
            if action == "deny":
                self._answer(403, [("Content-Type", "application/xml")], _error_body("AccessDenied", "Access Denied"))
                return
            if action == "answer":
                assert fault is not None
                self._answer(fault.status, [("Content-Type", "application/xml")], _error_body(fault.code, "injected"))
                return
            if action == "reset":
                self._reset()
                return
            if action == "stall":
                assert fault is not None
                proxy.stopping.wait(min(fault.seconds, MAX_STALL))
                if not fault.forward:
                    self._reset()
                    return
            if action == "corrupt" and body:
                body = body[:-1] + bytes([body[-1] ^ 0xFF])
            if action == "truncate" and body:
                body = body[: len(body) // 2]
            status, headers, answer = self._forward(body, fault)
            if action == "corrupt" and fault is not None and fault.report and status == 200:
                headers = _reporting(headers, fault.report, body)
            if action == "applied-500":
                self._answer(500, [("Content-Type", "application/xml")], _error_body("InternalError", "injected"))
            elif action == "applied-reset":
                self._reset()
            elif action == "flip-answer" and answer:
                middle = len(answer) // 2
                self._answer(status, headers, answer[:middle] + bytes([answer[middle] ^ 0xFF]) + answer[middle + 1 :])
            elif action == "cut-answer" and len(answer) > 1:
                self._answer(status, headers, answer, cut=True)
            elif action == "rewrite" and fault is not None and fault.rewrite is not None:
                self._answer(status, headers, fault.rewrite(answer))
            else:
                self._answer(status, headers, answer)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler
