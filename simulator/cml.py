"""A simulated fleet of CML 2.9 servers behind one real HTTP server on loopback."""

import contextlib
import json
import re
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from simulator.cml_worker import Reply, SimulatedCML, error_reply, json_reply

__all__ = ["CMLSimulator", "SimulatedCML"]

WORKER_PATH = re.compile(r"/cml/(?P<instance_id>[^/]+)/api/v0(?P<path>/.*)")
HANG_POLL_S = 0.05
STOP_TIMEOUT_S = 2.0  # at most this long joining threads in stop(); they are daemons anyway


class CMLSimulator:
    """Many simulated CML workers served by one threaded HTTP server on 127.0.0.1."""

    def __init__(
        self,
        username: str = "admin",
        password: str = "simulated-password",
        seed: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls  # a server context: serve HTTPS, as a real CML does
        self.username = username
        self.password = password
        self.seed = seed
        self.base_url = ""
        self.endpoint_template = ""
        self.requests_served = 0
        self._workers: dict[str, SimulatedCML] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> str:
        """Serve in a background thread; return the base url `http://127.0.0.1:PORT` (https
        with `tls`)."""
        self._stopping.clear()
        self._server = _Server(self)
        if self.tls is not None:  # handshakes happen in the handler threads, not the acceptor's
            self._server.socket = self.tls.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        port = self._server.server_address[1]
        self.base_url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        self.endpoint_template = f"{self.base_url}/cml/{{instance_id}}"
        return self.base_url

    def stop(self) -> None:
        """Stop serving: wake hung and sleeping requests, close connections, join threads."""
        self._stopping.set()
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = dict(self._connections)
        for connection in connections:
            _close(connection)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for thread in [self._thread, *connections.values()]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._server = None

    def __enter__(self) -> "CMLSimulator":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- workers -------------------------------------------------------------------------------

    def add_worker(self, instance_id: str, labs: int | None = None) -> SimulatedCML:
        """Add a worker with `labs` labs (random if None); return the existing one if present."""
        with self._lock:
            if instance_id not in self._workers:
                self._workers[instance_id] = SimulatedCML(
                    instance_id,
                    username=self.username,
                    password=self.password,
                    seed=self.seed,
                    lab_count=labs,
                    lock=self._lock,
                )
            return self._workers[instance_id]

    def remove_worker(self, instance_id: str) -> None:
        with self._lock:
            self._workers.pop(instance_id, None)

    def worker(self, instance_id: str) -> SimulatedCML:
        with self._lock:
            return self._workers[instance_id]

    def workers(self) -> list[SimulatedCML]:
        with self._lock:
            return list(self._workers.values())

    def advance(self) -> None:
        """One step of drift for every worker."""
        for worker in self.workers():
            worker.advance()

    # --- request handling (called from the handler threads) -----------------------------------

    def handle(
        self,
        method: str,
        raw_path: str,
        body: bytes,
        authorization: str | None,
        query: dict[str, str] | None = None,
    ) -> Reply | None:
        """Answer one request; None when the server stopped while the request waited."""
        path = urlsplit(raw_path).path
        if path.startswith("/_sim/"):
            return self._control(method, path, body)
        match = WORKER_PATH.fullmatch(path)
        with self._lock:
            self.requests_served += 1
            worker = self._workers.get(match["instance_id"]) if match else None
        if match is None or worker is None:
            return error_reply(404, f"No simulated CML worker at {path}")
        worker.record_request(match["path"])
        if not self._wait(worker):
            return None
        return worker.respond(method, match["path"], body, authorization, query or {})

    def _wait(self, worker: SimulatedCML) -> bool:
        """Apply the worker's latency and hang; False if the server stops meanwhile."""
        if worker.latency_ms > 0 and self._stopping.wait(worker.latency_ms / 1000):
            return False
        while worker.hang:
            if self._stopping.wait(HANG_POLL_S):
                return False
        return not self._stopping.is_set()

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        parts = path.removeprefix("/_sim/").strip("/").split("/")
        if method == "GET" and parts == ["workers"]:
            return json_reply(200, {w.instance_id: w.knobs() for w in self.workers()})
        if method == "POST" and parts == ["advance"]:
            self.advance()
            return Reply(204, b"")
        if method != "POST" or parts[0] != "workers" or len(parts) not in (2, 3):
            return error_reply(404, f"Unknown control endpoint {method} {path}")
        with self._lock:
            worker = self._workers.get(parts[1])
        if worker is None:
            return error_reply(404, f"Unknown worker {parts[1]}")
        if len(parts) == 3:
            if parts[2] != "expire_tokens":
                return error_reply(404, f"Unknown control endpoint {method} {path}")
            worker.expire_tokens()
            return Reply(204, b"")
        try:
            values = json.loads(body)
            if not isinstance(values, dict):
                raise ValueError("expected a JSON object of knob values")
            worker.set_knobs(values)
        except ValueError as error:
            return error_reply(400, str(error))
        return json_reply(200, worker.knobs())

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            if self._stopping.is_set():
                _close(connection)
            else:
                self._connections[connection] = threading.current_thread()

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.pop(connection, None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # CMLSimulator.stop() joins the handler threads itself, with a timeout
    request_queue_size = 1024  # the default backlog of 5 drops connections under a burst

    def __init__(self, simulator: CMLSimulator) -> None:
        self.simulator = simulator
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # clients hanging up are normal here
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.simulator._track(self.connection)

    def finish(self) -> None:
        self.server.simulator._untrack(self.connection)
        with contextlib.suppress(OSError):  # the connection was closed under us by stop()
            super().finish()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(error_reply(400, "Bad Content-Length"))
            return
        body = self.rfile.read(length) if length > 0 else b""
        reply = self.server.simulator.handle(
            method, self.path, body, self.headers.get("Authorization"), _query(self.path)
        )
        if reply is None:
            self.close_connection = True
            return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: benchmarks serve thousands of requests


def _query(raw_path: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(raw_path).query))


def _close(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
