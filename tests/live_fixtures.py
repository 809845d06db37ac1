"""Driving the live pages in tests: SSE requests made to the ASGI application as a browser's
EventSource makes them, a change feed the test steps by hand, and an SSE parser."""

import asyncio
import re
from dataclasses import dataclass, field

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.color import no_style
from django.db import connection
from django.test import Client

from fleet.live import stream as live_stream
from fleet.live.feed import ChangeFeed
from fleet.models import Change
from monitor.asgi import application

TIMEOUT = 5.0


def run(scenario, *args):
    """Run an async scenario from a sync test; its result. Its `sync_to_async` calls run in
    the test's own thread, on the test's database connection."""
    return async_to_sync(scenario)(*args)


def run_as_daphne(scenario):
    """Run an async scenario with no sync thread above it, as daphne runs the application:
    each request's sync work then gets a thread, and a database connection, of its own."""
    return asyncio.run(scenario())


def opened(text: str) -> bool:
    """Whether the stream has sent its opening: `retry:`, what was missed, and a bare `id:`
    line with the end of the change log."""
    return re.search(r"^id: \d+\n\n", text, flags=re.MULTILINE) is not None


def session_of(user) -> str:
    """A session cookie value for `user`, saved in the (committed) test database."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@dataclass
class Stream:
    """One GET to the ASGI application, read as it arrives."""

    task: asyncio.Task
    incoming: asyncio.Queue
    outgoing: asyncio.Queue
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    ended: bool = False

    async def read_until(self, done, timeout: float = TIMEOUT) -> str:
        """Read until `done(text so far)` holds; the text read."""
        async with asyncio.timeout(timeout):
            while not done(self.text):
                if self.ended:
                    raise AssertionError(f"the response ended first: {self.text!r}")
                await self._read_one()
        return self.text

    async def read_for(self, seconds: float) -> str:
        """Read whatever arrives in `seconds`."""
        try:
            async with asyncio.timeout(seconds):
                while not self.ended:
                    await self._read_one()
        except TimeoutError:
            pass
        return self.text

    async def read_to_end(self, timeout: float = TIMEOUT) -> str:
        async with asyncio.timeout(timeout):
            while not self.ended:
                await self._read_one()
        return self.text

    async def disconnect(self) -> None:
        """The browser goes away: the server tells the application so."""
        await self.incoming.put({"type": "http.disconnect"})
        await asyncio.wait_for(self.task, TIMEOUT)

    async def _read_one(self) -> None:
        message = await self.outgoing.get()
        self.text += message.get("body", b"").decode()
        self.ended = not message.get("more_body", False)


async def open_stream(path: str, session: str | None = None, headers=()) -> Stream:
    """Start a GET of `path` and wait for the start of its response."""
    path, _, query = path.partition("?")
    raw_headers = [(b"host", b"testserver"), *((k.encode(), v.encode()) for k, v in headers)]
    if session:
        raw_headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    incoming: asyncio.Queue = asyncio.Queue()
    outgoing: asyncio.Queue = asyncio.Queue()
    await incoming.put({"type": "http.request", "body": b"", "more_body": False})
    task = asyncio.create_task(application(scope, incoming.get, outgoing.put))
    start = await asyncio.wait_for(outgoing.get(), TIMEOUT)
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return Stream(task, incoming, outgoing, status=start["status"], headers=headers)


@dataclass
class Event:
    event: str = "message"
    id: str | None = None
    data: str = ""


def parse_sse(text: str) -> tuple[list[Event], list[str]]:
    """The events and the comments of an SSE stream, as the WHATWG algorithm reads them
    (an event without data still sets the last event id, but is not dispatched)."""
    events, comments = [], []
    current, data, last_id = Event(), [], None
    for line in re.split(r"\r\n|\r|\n", text):
        if not line:
            if data:
                events.append(Event(current.event, last_id, "\n".join(data)))
            current, data = Event(), []
            continue
        if line.startswith(":"):
            comments.append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            current.event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value
    return events, comments


OOB_OPENING_RE = re.compile(r'(?=<\w+ id="worker-\d+-\w+" hx-swap="outerHTML" hx-swap-oob="true")')
OOB_ID_RE = re.compile(r'<\w+ id="(worker-\d+-\w+)"')


def fragment_events(text: str) -> list[Event]:
    """The events of an SSE stream with each `fragments` event (the worker fragments that came
    together, as out-of-band swaps) read as one event per fragment, named by the fragment's id
    as htmx finds it, under the id of the event that carried it, with its html exactly as
    rendered (each data line but the last ends with the separator of the next fragment)."""
    out = []
    for event in parse_sse(text)[0]:
        if event.event != "fragments":
            out.append(event)
            continue
        pieces = [piece for piece in OOB_OPENING_RE.split(event.data) if piece]
        assert pieces, f"a fragments event with no fragment: {event.data!r}"
        for n, piece in enumerate(pieces):
            if n < len(pieces) - 1:
                assert piece.endswith("\n")
                piece = piece[:-1]
            out.append(Event(OOB_ID_RE.match(piece).group(1), event.id, piece))
    return out


def last_event_id(text: str) -> str | None:
    """What the browser's EventSource would send as Last-Event-ID after reading `text`."""
    ids = re.findall(r"^id: ?(.*)$", text, flags=re.MULTILINE)
    return ids[-1] if ids else None


@pytest.fixture
def layer():
    """The process's in-memory channel layer, emptied for the test."""
    layer = get_channel_layer()
    async_to_sync(layer.flush)()
    yield layer
    async_to_sync(layer.flush)()


@pytest.fixture
def feed(transactional_db, layer, monkeypatch):
    """A change feed the test steps by hand (`await feed.step()`); streams do not start the
    process's own. The first step notes where the log ends."""
    feed = ChangeFeed(layer)
    starts = []

    async def start_feed():
        starts.append(True)
        return feed

    monkeypatch.setattr(live_stream, "start_feed", start_feed)
    feed.starts = starts
    yield feed
    feed.close()


@pytest.fixture
def change_ids_reset(transactional_db):
    """Change ids set by hand far ahead move SQLite's AUTOINCREMENT counter, which survives the
    flush between tests: put it back, or the next test's feed sees a jump in the ids."""
    yield
    Change.objects.all().delete()
    table = [{"table": Change._meta.db_table, "column": "id"}]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_by_name_sql(no_style(), table):
            cursor.execute(sql)
