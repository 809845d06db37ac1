"""Serving a test's own HTTP server on loopback, in a thread, for as long as a test needs it."""

import contextlib
import threading
from collections.abc import Iterator
from socketserver import BaseServer
from typing import TypeVar

S = TypeVar("S", bound=BaseServer)


@contextlib.contextmanager
def serving(server: S) -> Iterator[S]:
    """Serve `server` in a daemon thread; shut it down and close its socket on the way out."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
