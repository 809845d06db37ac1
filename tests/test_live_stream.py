"""The SSE stream, `GET /events/?workers=...`: who may open it, what it sends, and that it lets
go of everything when the browser leaves."""

import asyncio
import re
import threading
import time

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from fleet.changelog import record_changes
from fleet.live import stream as live_stream
from fleet.live.fragments import render_worker_fragment
from fleet.models import Change, Worker
from tests.browser_fixtures import free_port, start_daphne, stop
from tests.live_fixtures import (
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
    return [event.event for event in parse_sse(text)[0]]


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
        mine = await sync_to_async(commit_change)(worker, "status")
        await sync_to_async(commit_change)(other_worker, "status")
        assert await feed.step() == 4  # row and aws of each worker
        text = await stream.read_until(lambda text: f"worker-{worker.pk}-row" in text)
        text = await stream.read_for(0.3)
        await stream.disconnect()
        return mine, text

    mine, text = run(scenario)
    events = parse_sse(text)[0]
    assert sorted(e.event for e in events) == [f"worker-{worker.pk}-aws", f"worker-{worker.pk}-row"]
    row = next(e for e in events if e.event.endswith("-row"))
    assert row.id == str(mine.pk)
    assert row.data == render_worker_fragment(Worker.objects.get(pk=worker.pk), "row")
    assert row.data.count("\n") > 5  # several data: lines made one fragment again


def test_it_can_follow_only_some_fragments(feed, viewer, worker):
    session = session_of(viewer)

    async def scenario():
        await feed.step()
        stream = await open_stream(f"/events/?workers={worker.pk}&fragments=row", session)
        await stream.read_until(opened)
        await sync_to_async(commit_change)(worker, "status")
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
    changed = commit_change(worker, "status")
    commit_change(other_worker, "status")

    async def scenario(last_id: int):
        stream = await open_stream(
            f"/events/?workers={worker.pk}", session, headers=[("Last-Event-ID", str(last_id))]
        )
        text = await stream.read_until(opened)
        await stream.disconnect()
        return text

    text = run(scenario, before.pk)
    events = parse_sse(text)[0]
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


def test_the_stream_ends_itself_after_its_longest_life(feed, layer, viewer, worker, monkeypatch):
    monkeypatch.setattr(live_stream, "MAX_STREAM_SECONDS", 0.3)
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


@pytest.mark.postgres
def test_open_streams_hold_no_database_connection(feed, viewer, worker):
    session = session_of(viewer)

    def connections_to_this_database() -> int:
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                )
                return cursor.fetchone()[0]
        finally:
            connection.close()  # this helper's own

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
    shown = re.findall(r'<tr id="worker-(\d+)-row" sse-swap="worker-\1-row"', html)
    assert len(shown) == 50  # the first page
    # ... starting from the log position the page was rendered at (0: an empty log).
    assert url == "/events/?fragments=row&amp;workers=" + ",".join(shown) + "&amp;last_event_id=0"
    assert 'sse-swap="fleet-changed"' in html and 'sse-swap="fleet-progress"' in html


def test_the_worker_page_opens_one_stream_for_its_sections(client, viewer, worker):
    client.force_login(viewer)
    html = client.get(f"/workers/{worker.pk}/").content.decode()
    (url,) = re.findall(r'sse-connect="([^"]+)"', html)
    assert url == (
        f"/events/?fragments=aws,cml,history,labs,actions&amp;workers={worker.pk}"
        "&amp;last_event_id=0"
    )
    for fragment in ("aws", "cml", "history", "labs", "actions"):
        assert f'sse-swap="worker-{worker.pk}-{fragment}"' in html


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
