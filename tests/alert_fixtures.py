"""Real receivers on loopback for the alert tests: an HTTP server that records each POST (and can
answer 500), and an SMTP server (aiosmtpd) that records each message."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from fleet.models import AlertChannel
from tests.browser_fixtures import free_port
from tests.loopback import serving


class Receiver(ThreadingHTTPServer):
    """Records the JSON body of each POST; answers `status` (200 unless a test says 500)."""

    daemon_threads = True

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        self.delay = 0.0  # seconds to take over each answer (overlapping senders)
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ReceiverHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"


class ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Receiver = self.server
        time.sleep(server.delay)
        with server.lock:
            if server.status == 200:
                server.received.append({"path": self.path, **json.loads(body or b"{}")})
        self.send_response(server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    with serving(Receiver()) as server:
        yield server


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.mailbox = mailbox
    yield controller
    controller.stop()


@pytest.fixture
def channel(db, receiver) -> AlertChannel:
    found = AlertChannel(name="ops webhook")
    found.url = receiver.url()
    found.save()
    return found
