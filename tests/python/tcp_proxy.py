"""A loopback TCP proxy for fault injection: forwards every accepted connection to an upstream
address and can cut all live connections on demand (`cut_all`) or periodically (`cut_every`).

A cut closes both sides of every connection at once, mid-request or mid-response as it happens to
fall, which is what a client sees when a network path dies: requests in flight get no answer and the
client must reconnect and retry. New connections are accepted throughout.

A cut can be preceded by a window in which upstream-to-client bytes are swallowed: requests still
reach the server and are executed, but their responses are lost, so the client's retries repeat work
the server already did (the case idempotence exists for), however fast the server answers.

    with TcpProxy(("127.0.0.1", broker_port)) as proxy:
        proxy.cut_every(0.3, swallow_responses_s=0.05)   # background thread
        ...                           # clients use 127.0.0.1:proxy.port
        proxy.stop_cutting()
"""

from __future__ import annotations

import socket
import threading

BUFFER_BYTES = 64 * 1024


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], listen_port: int = 0):
        self.upstream = upstream
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", listen_port))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._closed = threading.Event()
        self._cutter_stop = threading.Event()
        self._cutter: threading.Thread | None = None
        self._swallowing = threading.Event()
        self.responses_swallowed = 0
        self.accepted = 0
        self.cuts = 0
        self.connections_cut = 0
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)
        self._acceptor.start()

    def __enter__(self) -> "TcpProxy":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, server)
            with self._lock:
                if self._closed.is_set():
                    client.close()
                    server.close()
                    return
                self._pairs.add(pair)
                self.accepted += 1
            threading.Thread(target=self._pump, args=(client, server, pair, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, pair, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, pair, from_upstream: bool) -> None:
        try:
            while True:
                data = source.recv(BUFFER_BYTES)
                if not data:
                    break
                if from_upstream and self._swallowing.is_set():
                    with self._lock:
                        self.responses_swallowed += 1
                    continue
                sink.sendall(data)
        except OSError:
            pass
        self._close_pair(pair)

    def _close_pair(self, pair) -> bool:
        with self._lock:
            if pair not in self._pairs:
                return False
            self._pairs.discard(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        return True

    def cut_all(self) -> int:
        """Closes every live connection (both sides); returns how many were cut."""
        with self._lock:
            pairs = list(self._pairs)
        cut = sum(1 for pair in pairs if self._close_pair(pair))
        with self._lock:
            self.cuts += 1
            self.connections_cut += cut
        return cut

    def live_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def cut_every(self, interval_s: float, swallow_responses_s: float = 0.0) -> None:
        """Starts a background thread that calls cut_all() every interval_s seconds, each cut
        preceded by swallow_responses_s seconds in which upstream's bytes are dropped."""
        assert self._cutter is None, "already cutting"
        assert 0 <= swallow_responses_s < interval_s
        self._cutter_stop.clear()

        def loop() -> None:
            while not self._cutter_stop.wait(interval_s - swallow_responses_s):
                if swallow_responses_s:
                    self._swallowing.set()
                    self._cutter_stop.wait(swallow_responses_s)
                self.cut_all()
                self._swallowing.clear()

        self._cutter = threading.Thread(target=loop, name="proxy-cutter", daemon=True)
        self._cutter.start()

    def stop_cutting(self) -> None:
        if self._cutter is not None:
            self._cutter_stop.set()
            self._cutter.join(timeout=5)
            self._cutter = None

    def close(self) -> None:
        self.stop_cutting()
        self._closed.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._listener.close()
        self._acceptor.join(timeout=5)
        self.cut_all()
