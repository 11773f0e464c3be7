"""A TCP relay on loopback that keeps every byte clients send through it: what a server (or
anyone on the path) receives, for tests that must show a password was never sent.

It forwards both ways unchanged to ``upstream`` (a real PostgreSQL), so the client sees the
real server's authentication requests; ``sent`` is everything clients wrote, in order.
Sockets have timeouts, and ``close`` ends every relay."""

from __future__ import annotations

import socket
import threading

TIMEOUT = 60.0


class Wiretap:
    """Listens on 127.0.0.1:``port``; relays each connection to ``upstream``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self._sent = bytearray()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def sent(self) -> bytes:
        with self._lock:
            return bytes(self._sent)

    def _accept(self) -> None:
        while True:
            try:
                client, _address = self.server.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.upstream, timeout=TIMEOUT)
            client.settimeout(TIMEOUT)
            with self._lock:
                self._sockets += [client, server]
            for source, target, record in ((client, server, True), (server, client, False)):
                thread = threading.Thread(target=self._pump, args=(source, target, record), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, target: socket.socket, record: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if record:
                    with self._lock:
                        self._sent += chunk
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() that close() alone would leave waiting
        self.server.close()
        with self._lock:
            for end in self._sockets:
                try:
                    end.shutdown(socket.SHUT_RDWR)  # wakes a pump waiting in recv()
                except OSError:
                    pass
                end.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> Wiretap:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
