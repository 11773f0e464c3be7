"""A Node for the stand-in kubelet, so ``pods/log`` works through the real API server.

``kubectl logs`` (and every client's ``read_namespaced_pod_log``) asks the API server, which
looks up the pod's ``spec.nodeName``, finds that Node's address and kubelet port in its status
and fetches ``/containerLogs/<namespace>/<pod>/<container>`` from the kubelet over HTTPS. So
that path is exercised whole, ``LogNode``:

- registers a Node (``standin-<hex>``) whose address is 127.0.0.1 and whose kubelet port is
  an HTTPS server here (the control plane's serving certificate: the API server does not check
  a kubelet's certificate unless told to, and this control plane is not);
- binds each pod the stand-in kubelet runs to that Node (``pods/binding``, what a scheduler
  does), before the pod starts;
- serves each container's output once the run is over. A ``follow`` request for a pod still
  running waits for its end, then gets the whole output: the stand-in captures a run's output
  at its end, so a follower sees it all at once, never a part twice.

The Node goes when the ``with`` block ends.
"""

from __future__ import annotations

import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from .kubeenv import KubeEnv

FOLLOW_TIMEOUT = 300  # seconds a follower waits for a run to end (the stand-in's own run limit)


class LogNode:
    """A Node whose kubelet serves the logs of the pods the stand-in ran on it."""

    def __init__(self, kube: KubeEnv) -> None:
        self.kube = kube
        self.name = f"standin-{uuid.uuid4().hex[:8]}"
        self._outputs: dict[tuple[str, str], str] = {}
        self._done = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    # -- what the stand-in kubelet calls ------------------------------------------------------

    def bind(self, pod: dict[str, Any]) -> None:
        """Put the pod on this Node, as a scheduler would."""
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.name},
        }
        # The client cannot read the API server's Status answer as a Binding: take it raw.
        self.kube.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], body, _preload_content=False)

    def finished(self, namespace: str, name: str, output: str) -> None:
        with self._done:
            self._outputs[(namespace, name)] = output
            self._done.notify_all()

    # -- the kubelet's log endpoint -------------------------------------------------------------

    def _log(self, namespace: str, name: str, follow: bool) -> str:
        with self._done:
            if follow:
                self._done.wait_for(lambda: (namespace, name) in self._outputs, timeout=FOLLOW_TIMEOUT)
            return self._outputs.get((namespace, name), "")

    def __enter__(self) -> LogNode:
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404)
                    return
                follow = parse_qs(url.query).get("follow", ["false"])[0] == "true"
                data = node._log(parts[1], parts[2], follow).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        pki = self.kube.plane.pki
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pki / "server.crt"), str(pki / "server.key"))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.kube.core.create_node({"metadata": {"name": self.name}})
        self.kube.core.patch_node_status(
            self.name,
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": server.server_address[1]}},
                }
            },
        )
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kube.core.delete_node(self.name)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
