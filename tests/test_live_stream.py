"""The SSE stream, `GET /events/?workers=...`: who may open it, what it sends, and that it lets
go of everything when the browser leaves."""

import asyncio
import random
import re
import threading
import time
from types import SimpleNamespace
from urllib.parse import urlencode

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import OperationalError, connection

from fleet.live import feed as live_feed
from fleet.live import stream as live_stream
from fleet.live.fragments import render_worker_fragment
from fleet.models import Change, ChangeKind, CollectionRun, LiveProcess, Worker
from fleet.models.changes import record_changes
from tests.browser_fixtures import free_port, start_daphne, stop
from tests.live_fixtures import (
    TIMEOUT,
    fragment_events,
    last_event_id,
    open_stream,
    opened,
    parse_sse,
    run,
    run_as_daphne,
    session_of,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def other_worker(db) -> Worker:
    return Worker.objects.create(name="cml-worker-02", region="us-east-1", instance_id="i-0b0b0b0b")


def names(text: str) -> list[str]:
    """The fragments (and other events) a page received, each fragment by its own name."""
    return [event.event for event in fragment_events(text)]


def commit_change(worker: Worker, *fields: str) -> Change:
    """Log a change of `worker` in a transaction of its own, as the collection does."""
    (change,) = record_changes([(worker.pk, "updated", list(fields))])
    return change


def test_it_streams_with_the_right_headers_and_retry_first(feed, viewer, worker):
    session = session_of(viewer)

    async def scenario():
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        text = await stream.read_until(lambda text: "\n\n" in text)
        assert text.startswith("retry: 3000\n\n")
        await stream.disconnect()

    run(scenario)
    assert feed.starts  # the stream started the process's change feed


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Say which workers to follow"),
        ("?workers=", "Say which workers to follow"),
        ("?workers=abc", "worker ids separated by commas"),
        ("?workers=1,,2", "worker ids separated by commas"),
        ("?workers=1,2,", "worker ids separated by commas"),
        ("?workers=-1", "worker ids separated by commas"),
        ("?workers=0", "worker ids separated by commas"),
        ("?workers=1.5", "worker ids separated by commas"),
        ("?workers=%EF%BC%91", "worker ids separated by commas"),  # a full-width digit one
        ("?workers=" + "9" * 40, "worker ids separated by commas"),
        ("?workers=" + ",".join(str(n) for n in range(1, 202)), "at most 200 workers"),
        ("?workers=1&fragments=row,nope", "fragments must be some of row, aws"),
        ("?workers=1&fragments=history", "fragments must be some of row, aws"),
        ("?workers=1&fleet_chart=2w", "window must be one of 1h, 6h, 24h, 7d"),
    ],
)
def test_a_bad_worker_list_is_a_400_that_says_why(client, viewer, query, message):
    client.force_login(viewer)
    response = client.get(f"/events/{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_two_hundred_workers_are_allowed(feed, viewer):
    session = session_of(viewer)
    ids = ",".join(str(n) for n in range(1, 201))

    async def scenario():
        stream = await open_stream(f"/events/?workers={ids}", session)
        assert stream.status == 200
        await stream.disconnect()

    run(scenario)


def test_anonymous_visitors_get_403_not_a_login_page(client):
    response = client.get("/events/?workers=1")
    assert response.status_code == 403
    assert "Location" not in response.headers
    assert "Log in" in response.content.decode()


def test_users_without_the_view_permission_get_403(client, outsider):
    client.force_login(outsider)
    response = client.get("/events/?workers=1")
    assert response.status_code == 403
    assert "may not view workers" in response.content.decode()


def test_only_get_is_allowed(client, viewer):
    client.force_login(viewer)
    assert client.post("/events/?workers=1").status_code == 405


def test_an_event_carries_each_line_of_its_html_on_a_data_line():
    html = "<tr id='x'>\n  <td>a</td>\r\n  <td>b</td>\r</tr>\n"
    text = live_stream.sse_event({"event": "worker-1-row", "id": 7, "html": html})
    assert text.startswith("id: 7\nevent: worker-1-row\ndata: <tr id='x'>\ndata:   <td>a</td>\n")
    assert text.endswith("\n\n")
    (event,), _ = parse_sse(text)
    assert (event.event, event.id) == ("worker-1-row", "7")
    assert event.data == "<tr id='x'>\n  <td>a</td>\n  <td>b</td>\n</tr>\n"  # line ends as \n


def test_a_page_gets_its_workers_changes_and_no_others(feed, viewer, worker, other_worker):
    session = session_of(viewer)

    async def scenario():
        await feed.step()
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        await stream.read_until(opened)
        mine = await sync_to_async(commit_change)(worker, "instance_type")
        await sync_to_async(commit_change)(other_worker, "instance_type")
        # Row and aws of this worker; the other worker's fragments have no page here, so
        # they are not even rendered.
        assert await feed.step() == 2
        text = await stream.read_until(lambda text: f"worker-{worker.pk}-row" in text)
        text = await stream.read_for(0.3)
        await stream.disconnect()
        return mine, text

    mine, text = run(scenario)
    (together,) = parse_sse(text)[0]  # both fragments in one event, swapped out of band
    assert together.event == "fragments"
    events = fragment_events(text)
    assert sorted(e.event for e in events) == [f"worker-{worker.pk}-aws", f"worker-{worker.pk}-row"]
    row = next(e for e in events if e.event.endswith("-row"))
    assert row.id == str(mine.pk)
    assert row.data == render_worker_fragment(Worker.objects.get(pk=worker.pk), "row", oob=True)
    assert row.data.count("\n") > 5  # several data: lines made one fragment again


def test_it_can_follow_only_some_fragments(feed, viewer, worker):
    session = session_of(viewer)

    async def scenario():
        await feed.step()
        stream = await open_stream(f"/events/?workers={worker.pk}&fragments=row", session)
        await stream.read_until(opened)
        await sync_to_async(commit_change)(worker, "instance_type")
        await feed.step()
        text = await stream.read_until(lambda text: "-row" in text)
        text = await stream.read_for(0.3)
        await stream.disconnect()
        return text

    assert names(run(scenario)) == [f"worker-{worker.pk}-row"]


def test_a_reconnecting_browser_gets_what_changed_since_its_last_event(
    feed, viewer, worker, other_worker
):
    session = session_of(viewer)
    before = commit_change(worker, "cml_version")
    changed = commit_change(worker, "instance_type")
    commit_change(other_worker, "instance_type")

    async def scenario(last_id: int):
        stream = await open_stream(
            f"/events/?workers={worker.pk}", session, headers=[("Last-Event-ID", str(last_id))]
        )
        text = await stream.read_until(opened)
        await stream.disconnect()
        return text

    text = run(scenario, before.pk)
    assert len(parse_sse(text)[0]) == 1  # the catch-up is one event too
    events = fragment_events(text)
    assert sorted(e.event for e in events) == [f"worker-{worker.pk}-aws", f"worker-{worker.pk}-row"]
    assert {e.id for e in events} == {str(changed.pk)}
    top = Change.objects.order_by("-id").first().pk
    assert last_event_id(text) == str(top)  # the end of the log, though the last was B's

    text = run(scenario, top)
    assert parse_sse(text)[0] == []
    assert last_event_id(text) == str(top)


def test_the_last_event_id_can_come_in_the_query_string(feed, viewer, worker):
    session = session_of(viewer)
    before = commit_change(worker, "cml_version")
    commit_change(worker, "labs")

    async def scenario():
        stream = await open_stream(
            f"/events/?workers={worker.pk}&last_event_id={before.pk}", session
        )
        text = await stream.read_until(opened)
        await stream.disconnect()
        return text

    assert sorted(names(run(scenario))) == [
        f"worker-{worker.pk}-labs",
        f"worker-{worker.pk}-row",
    ]


def test_a_quiet_stream_sends_keep_alive_comments(feed, viewer, worker, monkeypatch):
    monkeypatch.setattr(live_stream, "KEEP_ALIVE_SECONDS", 0.05)
    session = session_of(viewer)

    async def scenario():
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        text = await stream.read_until(lambda text: text.count(": keep-alive\n\n") >= 2)
        await stream.disconnect()
        return text

    assert parse_sse(run(scenario))[1][:2] == ["keep-alive", "keep-alive"]


def test_dropped_connections_leave_no_group_membership(feed, layer, viewer, worker, other_worker):
    session = session_of(viewer)
    row_group = f"worker-{worker.pk}-row"

    async def scenario():
        streams = [
            await open_stream(f"/events/?workers={worker.pk},{other_worker.pk}", session)
            for _ in range(50)
        ]
        for stream in streams:
            await stream.read_until(opened)
        assert len(layer.groups[row_group]) == 50
        assert len(layer.groups["fleet"]) == 50
        for stream in streams:
            await stream.disconnect()

    run(scenario)
    assert layer.groups == {}


def test_open_streams_are_counted_and_reported_for_metrics(feed, viewer, worker, monkeypatch):
    monkeypatch.setattr(live_feed, "REPORT_SECONDS", 0.05)
    session = session_of(viewer)

    async def scenario():
        streams = [await open_stream(f"/events/?workers={worker.pk}", session) for _ in range(3)]
        for stream in streams:
            await stream.read_until(opened)
        assert feed.streams == 3
        reporter = asyncio.create_task(feed.report_streams())
        await asyncio.sleep(0.2)
        while_open = await sync_to_async(LiveProcess.objects.open_streams)()
        for stream in streams:
            await stream.disconnect()
        await asyncio.sleep(0.2)
        reporter.cancel()
        return while_open

    assert run(scenario) == 3
    assert feed.streams == 0
    assert LiveProcess.objects.open_streams() == 0


def test_the_stream_ends_itself_after_its_longest_life(feed, layer, viewer, worker, monkeypatch):
    monkeypatch.setattr(live_stream, "MAX_STREAM_SECONDS", 0.3)
    monkeypatch.setattr(live_stream, "random", SimpleNamespace(random=lambda: 0.5))  # no jitter
    monkeypatch.setattr(live_stream, "KEEP_ALIVE_SECONDS", 0.1)
    session = session_of(viewer)

    async def scenario():
        started = time.monotonic()
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        # It ends by itself (a stream that did not would time these out), however slow the
        # machine is: no upper bound on the time taken.
        await stream.read_to_end(timeout=10)
        await asyncio.wait_for(stream.task, 10)
        return time.monotonic() - started

    elapsed = run(scenario)
    assert elapsed >= 0.3  # not before its life was up
    assert layer.groups == {}


def connections_to_this_database() -> int:
    """The PostgreSQL sessions open on the test database (this helper's own is closed after)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            )
            return cursor.fetchone()[0]
    finally:
        connection.close()


@pytest.mark.postgres
def test_open_streams_hold_no_database_connection(feed, viewer, worker):
    session = session_of(viewer)

    async def scenario():
        await feed.step()
        before = await sync_to_async(connections_to_this_database)()
        streams = [await open_stream(f"/events/?workers={worker.pk}", session) for _ in range(10)]
        for stream in streams:
            await stream.read_until(opened)
        during = await sync_to_async(connections_to_this_database)()
        for stream in streams:
            await stream.disconnect()
        return before, during

    before, during = run_as_daphne(scenario)
    assert during == before


def test_the_list_page_opens_one_stream_for_the_rows_on_screen(client, viewer):
    Worker.objects.bulk_create(
        Worker(name=f"w-{n:03d}", region="us-east-1", instance_id=f"i-{n:08x}") for n in range(60)
    )
    client.force_login(viewer)
    html = client.get("/").content.decode()
    (url,) = re.findall(r'sse-connect="([^"]+)"', html)
    shown = re.findall(r'<tr id="worker-(\d+)-row"', html)
    assert len(shown) == 50  # the first page
    # ... starting from the log position the page was rendered at (0: an empty log).
    # The fleet chart rides on it, over the window shown (an hour: no samples yet).
    assert url == (
        "/events/?fragments=row&amp;workers="
        + ",".join(shown)
        + "&amp;fleet_chart=1h&amp;last_event_id=0"
    )
    assert 'sse-swap="fleet-changed"' in html and 'sse-swap="fleet-progress"' in html
    assert 'sse-swap="fleet-chart-1h"' in html
    assert 'sse-swap="fragments"' in html  # the rows' live fragments, swapped by their ids


def test_the_worker_page_opens_one_stream_for_its_sections(client, viewer, worker):
    client.force_login(viewer)
    html = client.get(f"/workers/{worker.pk}/").content.decode()
    (url,) = re.findall(r'sse-connect="([^"]+)"', html)
    assert url == (
        f"/events/?fragments=aws,cml,idle,history-1h,labs,actions&amp;workers={worker.pk}"
        "&amp;last_event_id=0"
    )
    assert 'sse-swap="fragments" hx-swap="none"' in html  # its sections arrive out of band
    for fragment in ("aws", "cml", "idle", "history-1h", "labs", "actions"):
        assert f'id="worker-{worker.pk}-{fragment}"' in html


def test_daphne_cancels_the_stream_when_the_browser_goes_away(transactional_db, viewer, worker):
    """Under daphne, a closed connection reaches Django as http.disconnect, which cancels the
    stream at once: it leaves its groups without waiting for a keep-alive write to fail."""
    session = session_of(viewer)
    port = free_port()
    daphne = start_daphne(port, {"LOG_LEVEL": "DEBUG"})
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(daphne.stderr), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{port}/events/?workers={worker.pk}"
        with (
            httpx.Client(timeout=10) as http,
            http.stream("GET", url, cookies={"sessionid": session}) as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("id:"):
                    break
        closed_at = time.monotonic()
        while not any("stream closed" in line for line in log):
            assert time.monotonic() - closed_at < 5, "the stream was not cancelled"
            time.sleep(0.05)
    finally:
        stop(daphne)


# Where a page starts from: Last-Event-ID, or the log position the page was rendered at.

GARBAGE_IDS = ["abc", "-1", "1e3", " 7", "7 ", "0x10", "\u0663", "9" * 19, "9" * 5000]


@pytest.mark.parametrize("value", GARBAGE_IDS)
@pytest.mark.parametrize("where", ["header", "query"])
def test_a_last_event_id_that_is_not_a_change_id_counts_as_absent(
    feed, viewer, worker, where, value
):
    session = session_of(viewer)
    commit_change(worker, "instance_type")
    top = Change.objects.order_by("-id").first().pk
    path = f"/events/?workers={worker.pk}"
    headers = [("Last-Event-ID", value)] if where == "header" else []
    if where == "query":
        path += "&" + urlencode({"last_event_id": value})

    async def scenario():
        stream = await open_stream(path, session, headers=headers)
        text = await stream.read_until(opened) if stream.status == 200 else ""
        await stream.disconnect()
        return stream.status, text

    status, text = run(scenario)
    assert status == 200
    assert parse_sse(text)[0] == []  # no catch-up: it starts from the end of the log
    assert last_event_id(text) == str(top)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", 0), ("42", 42), ("007", 7), ("9" * 18, int("9" * 18)), (None, None), ("", None)]
    + [(garbage, None) for garbage in GARBAGE_IDS],
)
def test_parse_last_event_id(value, expected):
    assert live_stream.parse_last_event_id(value) == expected


def test_a_bad_last_event_id_header_falls_back_to_the_pages_position(feed, viewer, worker):
    session = session_of(viewer)
    before = commit_change(worker, "cml_version")
    commit_change(worker, "labs")

    async def scenario():
        stream = await open_stream(
            f"/events/?workers={worker.pk}&last_event_id={before.pk}",
            session,
            headers=[("Last-Event-ID", "9" * 5000)],
        )
        text = await stream.read_until(opened)
        await stream.disconnect()
        return text

    assert sorted(names(run(scenario))) == [f"worker-{worker.pk}-labs", f"worker-{worker.pk}-row"]


# The catch-up covers what the live messages cover: fleet-level changes and added or removed
# workers too, not only the changes of the page's own workers.


def test_the_catch_up_replays_the_progress_of_a_cycle(feed, viewer, worker):
    session = session_of(viewer)
    CollectionRun.objects.create(workers_total=10, workers_done=4)
    before = commit_change(worker, "cml_version")
    (progress,) = record_changes([(None, ChangeKind.FLEET, ["run"])])

    (event,) = _caught_up_after(before, worker, session)
    assert (event.event, event.id) == ("fleet-progress", str(progress.pk))
    assert "4 of 10 workers" in event.data


def _caught_up_after(before, worker, session) -> list:
    """The events a page showing `worker` gets when it reconnects after the change `before`."""

    async def scenario():
        stream = await open_stream(
            f"/events/?workers={worker.pk}", session, headers=[("Last-Event-ID", str(before.pk))]
        )
        text = await stream.read_until(opened)
        await stream.disconnect()
        return text

    events, _ = parse_sse(run(scenario))
    return events


@pytest.mark.parametrize("kind", ["created", "deleted"])
def test_the_catch_up_replays_added_and_removed_workers(feed, viewer, worker, kind):
    session = session_of(viewer)
    before = commit_change(worker, "cml_version")
    (change,) = record_changes([(worker.pk + 100, kind, [])])  # a worker this page does not show

    (event,) = _caught_up_after(before, worker, session)
    assert (event.event, event.id) == ("fleet-changed", str(change.pk))
    assert "Workers were added or removed" in event.data


# A page that can no longer be kept current is told to reload, and its stream ends.


def ends_with_reload(text: str, reason: str) -> bool:
    return text.endswith(f"event: reload\ndata: {reason}\n\n")


class OpeningsHeld:
    """A stand-in for the feed's openings guard: the view's check of the user passes, and then
    the stream waits for its turn at the database (many pages reconnecting at once) until
    `turn` is set. Waiting on an asyncio event, the stream can be cancelled meanwhile."""

    def __init__(self) -> None:
        self.turn = asyncio.Event()
        self.entered = 0

    async def __aenter__(self) -> None:
        self.entered += 1
        if self.entered > 1:
            await self.turn.wait()

    async def __aexit__(self, *exc) -> None:
        return None


@pytest.fixture
def turn(feed, monkeypatch) -> asyncio.Event:
    held = OpeningsHeld()
    monkeypatch.setattr(feed, "openings", held)
    return held.turn


def test_a_stream_that_goes_leaves_nothing_in_the_layer(feed, layer, viewer, worker, turn):
    session = session_of(viewer)

    async def scenario():
        await feed.step()
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        await stream.read_until(lambda text: text.startswith("retry:"))
        await sync_to_async(commit_change)(worker, "instance_type")
        await feed.step()
        waiting = sum(queue.qsize() for queue in layer.channels.values())
        await stream.disconnect()  # while it waits for its turn
        return waiting

    assert run_as_daphne(scenario) == 2  # row and aws, unread when the browser went
    assert layer.channels == {} and layer.groups == {}


@pytest.mark.parametrize("loss", ["overflow", "expiry"])
def test_a_stream_that_falls_behind_tells_its_page_to_reload(
    feed, layer, viewer, worker, monkeypatch, loss, turn
):
    """While a stream waits for its turn at the database (many pages reconnecting at once),
    its channel fills up or its messages grow old: the page reloads, it is not dropped."""
    session = session_of(viewer)
    if loss == "overflow":
        monkeypatch.setattr(layer, "capacity", 2)
    else:
        monkeypatch.setattr(layer, "expiry", -1)  # every message is already too old

    async def scenario():
        await feed.step()
        stream = await open_stream(f"/events/?workers={worker.pk}&fragments=row", session)
        await stream.read_until(lambda text: text.startswith("retry:"))
        for status in ("stopped", "running", "stopped"):
            await sync_to_async(Worker.objects.filter(pk=worker.pk).update)(status=status)
            await sync_to_async(commit_change)(worker, "instance_type")
            await feed.step()
        groups_while_waiting = {g for g, members in layer.groups.items() if members}
        turn.set()
        text = await stream.read_to_end()
        await asyncio.wait_for(stream.task, TIMEOUT)
        return groups_while_waiting, text

    groups_while_waiting, text = run_as_daphne(scenario)
    assert groups_while_waiting == set()  # lost: out of its groups, and knows it
    assert ends_with_reload(text, "fell-behind"), text
    assert layer.channels == {}  # nothing left behind


def test_a_fragment_that_fails_to_render_reloads_the_pages_showing_it(
    feed, layer, viewer, worker, monkeypatch
):
    session = session_of(viewer)

    def broken(worker, fragment):
        raise ValueError("a template bug")

    monkeypatch.setattr(live_feed, "render_worker_fragment", broken)

    async def scenario():
        await feed.step()
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        await stream.read_until(opened)
        await sync_to_async(commit_change)(worker, "instance_type")
        await feed.step()
        text = await stream.read_to_end()
        await asyncio.wait_for(stream.task, 5)
        return text

    text = run(scenario)
    assert ends_with_reload(text, "render-failed"), text
    assert parse_sse(text)[0][-1].event == "reload"
    assert layer.groups == {}


def test_a_catch_up_fragment_that_fails_to_render_reloads_the_page(
    feed, viewer, worker, monkeypatch
):
    session = session_of(viewer)
    before = commit_change(worker, "cml_version")
    commit_change(worker, "instance_type")
    monkeypatch.setattr(live_feed, "render_worker_fragment", lambda w, fragment: 1 / 0)

    async def scenario():
        stream = await open_stream(
            f"/events/?workers={worker.pk}", session, headers=[("Last-Event-ID", str(before.pk))]
        )
        text = await stream.read_to_end()
        await asyncio.wait_for(stream.task, 5)
        return text

    text = run(scenario)
    assert ends_with_reload(text, "render-failed"), text
    assert not opened(text)  # it ends before claiming the page is current


# The user is checked again at each keep-alive.


def log_out(user: User) -> None:
    Session.objects.all().delete()  # what logging out does to the session the stream uses


def deactivate(user: User) -> None:
    User.objects.filter(pk=user.pk).update(is_active=False)


def take_the_role_away(user: User) -> None:
    user.groups.clear()


@pytest.mark.parametrize("revoke", [log_out, deactivate, take_the_role_away])
def test_a_stream_ends_with_a_reload_once_its_user_may_no_longer_watch(
    feed, viewer, worker, monkeypatch, revoke
):
    monkeypatch.setattr(live_stream, "KEEP_ALIVE_SECONDS", 0.05)
    session = session_of(viewer)

    async def scenario():
        await feed.step()
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        await stream.read_until(lambda text: ": keep-alive" in text)
        await sync_to_async(revoke)(viewer)
        text = await stream.read_to_end()
        await asyncio.wait_for(stream.task, 5)
        return text

    text = run(scenario)
    assert ends_with_reload(text, "signed-out"), text


def test_a_stream_whose_user_may_still_watch_goes_on(feed, viewer, worker, monkeypatch):
    monkeypatch.setattr(live_stream, "KEEP_ALIVE_SECONDS", 0.05)
    session = session_of(viewer)
    checks = []
    real_check = live_stream.Viewer.allowed
    monkeypatch.setattr(
        live_stream.Viewer,
        "allowed",
        staticmethod(lambda viewers: checks.append(1) or real_check(viewers)),
    )

    async def scenario():
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        text = await stream.read_until(lambda text: text.count(": keep-alive") >= 3)
        await stream.disconnect()
        return text

    text = run(scenario)
    assert "reload" not in text
    assert len(checks) >= 3  # one check per keep-alive


def test_a_busy_stream_still_checks_its_user(feed, viewer, worker, monkeypatch):
    """Keep-alives (and the check before each) come on time even when messages keep coming."""
    monkeypatch.setattr(live_stream, "KEEP_ALIVE_SECONDS", 0.2)
    session = session_of(viewer)

    async def scenario():
        await feed.step()
        stream = await open_stream(f"/events/?workers={worker.pk}&fragments=cml", session)
        await stream.read_until(opened)
        await sync_to_async(log_out)(viewer)
        for _ in range(100):
            if stream.ended:
                break
            await sync_to_async(commit_change)(worker, "cml_version")
            await feed.step()
            await stream.read_for(0.05)
        await asyncio.wait_for(stream.task, 5)
        return stream.text

    text = run(scenario)
    assert ends_with_reload(text, "signed-out"), text[-300:]
    assert f'id="worker-{worker.pk}-cml"' in text


def test_user_checks_cost_two_queries_however_many_viewers(viewer, django_assert_num_queries):
    others = [User.objects.create_user(f"u{n}", password="pw") for n in range(20)]
    for user in others:
        user.groups.set(viewer.groups.all())
    viewers = [live_stream.Viewer(u.pk, session_of(u)) for u in [viewer, *others]]
    with django_assert_num_queries(2):
        assert live_stream.Viewer.allowed(viewers) == set(viewers)
    Session.objects.filter(session_key=viewers[0].session_key).delete()  # one logs out
    deactivate(others[0])
    with django_assert_num_queries(2):
        assert live_stream.Viewer.allowed(viewers) == set(viewers[2:])


def test_many_checks_at_once_share_one_run_of_the_query(feed):
    """A thousand streams whose keep-alives fall due together cost one run on the feed's
    thread, not a thousand queries in the way of the changes."""
    runs = []

    def even_ones(items):
        runs.append(len(items))
        return {item for item in items if item % 2 == 0}

    async def scenario():
        return await asyncio.gather(*(feed.query_batched(even_ones, n) for n in range(1000)))

    answers = run(scenario)
    assert answers == [n % 2 == 0 for n in range(1000)]
    assert runs == [1000]


def test_a_superuser_without_a_role_may_watch(db):
    admin = User.objects.create_superuser("root", password="pw")
    watcher = live_stream.Viewer(admin.pk, session_of(admin))
    assert live_stream.Viewer.allowed([watcher]) == {watcher}


def test_a_failed_user_check_keeps_the_stream(feed, viewer, worker, monkeypatch, caplog):
    """When the database cannot answer, nothing reaches the stream anyway: it waits for the
    next check rather than sending every page to an error page."""
    monkeypatch.setattr(live_stream, "KEEP_ALIVE_SECONDS", 0.05)
    session = session_of(viewer)

    def unreachable(viewers):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(live_stream.Viewer, "allowed", staticmethod(unreachable))

    async def scenario():
        stream = await open_stream(f"/events/?workers={worker.pk}", session)
        text = await stream.read_until(lambda text: text.count(": keep-alive") >= 2)
        await stream.disconnect()
        return text

    assert "reload" not in run(scenario)
    assert "could not re-check the user of a stream" in caplog.text


@pytest.mark.postgres
def test_user_checks_use_no_connection_of_their_own(feed, viewer, worker, monkeypatch):
    monkeypatch.setattr(live_stream, "KEEP_ALIVE_SECONDS", 0.05)
    session = session_of(viewer)

    async def scenario():
        await feed.step()  # the feed's own connection is open from here on
        before = await sync_to_async(connections_to_this_database)()
        streams = [await open_stream(f"/events/?workers={worker.pk}", session) for _ in range(5)]
        for stream in streams:
            await stream.read_until(lambda text: text.count(": keep-alive") >= 2)
        during = await sync_to_async(connections_to_this_database)()
        for stream in streams:
            await stream.disconnect()
        return before, during

    before, during = run_as_daphne(scenario)
    assert during == before


# The stream's life: MAX_STREAM_SECONDS ± 20 %, so pages reconnected together drift apart.


def test_a_streams_life_is_jittered_by_at_most_a_fifth():
    longest = live_stream.MAX_STREAM_SECONDS
    assert live_stream.stream_lifetime(lambda: 0.0) == pytest.approx(0.8 * longest)
    assert live_stream.stream_lifetime(lambda: 0.5) == pytest.approx(longest)
    assert live_stream.stream_lifetime(lambda: 1.0) == pytest.approx(1.2 * longest)
    source = random.Random(7)
    draws = [live_stream.stream_lifetime(source.random) for _ in range(1000)]
    assert all(0.8 * longest <= d < 1.2 * longest for d in draws)
    assert min(draws) < 0.82 * longest and max(draws) > 1.18 * longest  # spread, not lock-step


def test_each_stream_gets_a_life_of_its_own(feed, viewer, worker, monkeypatch):
    lives = []
    real_stream = live_stream.stream

    def recording_stream(*args):
        lives.append(args[-1])
        return real_stream(*args)

    draws = iter([0.0, 1.0])
    monkeypatch.setattr(live_stream, "random", SimpleNamespace(random=lambda: next(draws)))
    monkeypatch.setattr(live_stream, "stream", recording_stream)
    session = session_of(viewer)

    async def scenario():
        for _ in range(2):
            stream = await open_stream(f"/events/?workers={worker.pk}", session)
            await stream.read_until(opened)
            await stream.disconnect()

    run(scenario)
    longest = live_stream.MAX_STREAM_SECONDS
    assert lives == [pytest.approx(0.8 * longest), pytest.approx(1.2 * longest)]
