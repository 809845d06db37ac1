"""The change feed: what it renders for a change and how often, where it sends it, what wakes it,
and that admin edits reach it through the change log."""

import asyncio
import contextlib
import logging
import tracemalloc
from types import SimpleNamespace

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import admin
from django.db import DataError, OperationalError, transaction
from django.template import TemplateSyntaxError

from fleet.admin import WorkerAdmin
from fleet.live import feed as live_feed
from fleet.live import fragments
from fleet.live.feed import ChangeFeed, start_feed
from fleet.live.fragments import (
    FRAGMENT_FIELDS,
    HISTORY_FRAGMENTS,
    WORKER_FRAGMENTS,
    fragments_for,
)
from fleet.models import Change, ChangeKind, CollectionRun, Lab, Worker
from fleet.models.changes import record_change, record_changes, record_fleet_change
from fleet.models.workers import WorkerQuerySet
from tests.browser_fixtures import free_port, start_daphne, stop
from tests.live_fixtures import fragment_events, open_stream, opened, run, session_of

ALL = set(WORKER_FRAGMENTS)
HISTORY = set(HISTORY_FRAGMENTS)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["status"], {"row", "aws", "idle"}),
        (["instance_type"], {"row", "aws"}),
        (["labs"], {"labs", "row"}),
        (["cml_version"], {"cml"}),
        (["name"], {"row"}),
        (["cpu_percent"], {"row", "aws"}),  # the charts follow the cycle's samples
        (["nodes_running", "last_error"], {"cml"}),
        (["actions"], {"actions", "idle", *HISTORY}),  # charts mark them; idle counts pauses
        (["no_such_field"], ALL),
        (["cml_version", "no_such_field"], ALL),
        ([], ALL),
    ],
)
def test_changed_fields_map_to_the_fragments_that_show_them(fields, expected):
    assert fragments_for(fields) == expected


def test_every_field_a_page_shows_belongs_to_a_fragment():
    names = {f.name for f in Worker._meta.concrete_fields} - {"id", "created_at"}
    claimed = set().union(*FRAGMENT_FIELDS.values())
    assert names <= claimed, f"no fragment shows {sorted(names - claimed)}"
    assert claimed - names == {"labs", "actions", "alerts"}  # labs, audit, alerts; else a typo
    assert set(FRAGMENT_FIELDS) == ALL


def commit(worker_id: int | None, fields: list[str], kind: str = "updated") -> Change:
    """Log one change in a transaction of its own, as the collection does."""
    (change,) = record_changes([(worker_id, kind, fields)])
    return change


async def subscribe(layer, *groups: str) -> str:
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    return channel


async def received(layer, channel: str, timeout: float = 0.3) -> list[dict]:
    """Every message waiting in the channel, or arriving within `timeout`."""
    messages = []
    with contextlib.suppress(TimeoutError):
        while True:
            messages.append(await asyncio.wait_for(layer.receive(channel), timeout))
    return messages


@pytest.mark.django_db(transaction=True)
def test_each_fragment_is_rendered_once_for_all_its_subscribers(feed, viewer, worker, monkeypatch):
    renders = []

    def counting_render(worker, fragment, *args, **kwargs):
        renders.append(fragment)
        return fragments.render_worker_fragment(worker, fragment, *args, **kwargs)

    monkeypatch.setattr(live_feed, "render_worker_fragment", counting_render)
    session = session_of(viewer)

    async def scenario():
        await feed.step()
        streams = [await open_stream(f"/events/?workers={worker.pk}", session) for _ in range(5)]
        for stream in streams:
            await stream.read_until(opened)
        await sync_to_async(record_change)(worker.pk, fields=["instance_type"])
        await feed.step()
        texts = [
            await stream.read_until(lambda t: '-row" ' in t and '-aws" ' in t) for stream in streams
        ]
        for stream in streams:
            await stream.disconnect()
        return texts

    texts = run(scenario)
    assert sorted(renders) == ["aws", "row"]
    for text in texts:
        assert sorted(e.event for e in fragment_events(text)) == [
            f"worker-{worker.pk}-aws",
            f"worker-{worker.pk}-row",
        ]


@pytest.mark.django_db(transaction=True)
def test_several_changes_of_a_worker_in_one_step_render_its_fragments_once(
    feed, layer, worker, monkeypatch
):
    renders = []
    monkeypatch.setattr(
        live_feed,
        "render_worker_fragment",
        lambda w, fragment, **options: renders.append(fragment) or "",
    )

    async def scenario():
        await feed.step()
        channel = await subscribe(layer, f"worker-{worker.pk}-row", f"worker-{worker.pk}-cml")
        await sync_to_async(record_change)(worker.pk, fields=["instance_type"])
        await sync_to_async(record_change)(worker.pk, fields=["cml_version"])
        await feed.step()
        return await received(layer, channel)

    messages = run(scenario)
    assert sorted(renders) == ["cml", "row"]  # aws changed too, but no page shows it here
    newest = Change.objects.order_by("-id").first().pk
    assert sorted(m["event"] for m in messages) == [
        f"worker-{worker.pk}-cml",
        f"worker-{worker.pk}-row",
    ]
    assert {m["id"] for m in messages} == {newest}  # the newest change behind each fragment


@pytest.mark.django_db(transaction=True)
def test_added_or_removed_workers_make_one_fleet_changed_message(feed, layer, worker):
    async def scenario():
        await feed.step()
        fleet = await subscribe(layer, "fleet")
        row = await subscribe(layer, f"worker-{worker.pk}-row")
        await sync_to_async(record_changes)(
            [
                (worker.pk + 1, "created", []),
                (worker.pk + 2, "created", []),
                (worker.pk, "deleted", []),
            ]
        )
        sent = await feed.step()
        return sent, await received(layer, fleet), await received(layer, row, 0.1)

    sent, fleet_messages, row_messages = run(scenario)
    assert sent == 1
    (message,) = fleet_messages
    assert message["event"] == "fleet-changed"
    assert "Workers were added or removed" in message["html"]
    assert message["id"] == Change.objects.order_by("-id").first().pk
    assert row_messages == []


@pytest.mark.django_db(transaction=True)
def test_a_fleet_change_sends_the_progress_line(feed, layer):
    CollectionRun.objects.create(workers_total=10, workers_done=4)

    async def scenario():
        await feed.step()
        fleet = await subscribe(layer, "fleet")
        await sync_to_async(record_fleet_change)()
        await feed.step()
        return await received(layer, fleet)

    (message,) = run(scenario)
    assert message["event"] == "fleet-progress"
    assert 'id="fleet-progress"' in message["html"]
    assert "4 of 10 workers" in message["html"]


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_late_under_a_lower_id_still_arrives(feed, layer, worker):
    """Two transactions at once: the higher id commits first, the lower one after."""

    async def scenario():
        await feed.step()
        channel = await subscribe(layer, f"worker-{worker.pk}-cml")
        top = feed.last_id
        await sync_to_async(Change.objects.create)(
            id=top + 2, worker_id=worker.pk, fields=["cml_version"]
        )
        await feed.step()
        first = await received(layer, channel)
        await sync_to_async(Change.objects.create)(
            id=top + 1, worker_id=worker.pk, fields=["cml_version"]
        )
        await feed.step()
        late = await received(layer, channel)
        await feed.step()
        again = await received(layer, channel, 0.1)
        return top, first, late, again

    top, first, late, again = run(scenario)
    assert [m["id"] for m in first] == [top + 2]
    assert [m["id"] for m in late] == [top + 1]
    assert again == []  # found once, then no longer looked for


@pytest.mark.django_db(transaction=True)
def test_ids_skipped_for_longer_than_the_gap_time_are_given_up(feed, worker, monkeypatch):
    async def scenario():
        await feed.step()
        top = feed.last_id
        await sync_to_async(Change.objects.create)(id=top + 3, worker_id=worker.pk, fields=["name"])
        await feed.step()
        waiting = set(feed.gaps)
        monkeypatch.setattr(live_feed, "GAP_SECONDS", 0)
        await feed.step()
        return top, waiting, set(feed.gaps)

    top, waiting, left = run(scenario)
    assert waiting == {top + 1, top + 2}
    assert left == set()


@pytest.mark.django_db(transaction=True)
def test_the_feed_logs_a_failed_read_and_reads_again(layer, worker, monkeypatch, caplog):
    """A read that fails (the database went away) read nothing: the next step reads the rows."""
    monkeypatch.setattr(live_feed, "RESTART_SECONDS", 0.05)
    real_filter = Change.objects.filter
    failures = []

    def filter_failing_once(*args, **kwargs):
        if not failures:
            failures.append(True)
            raise OperationalError("server closed the connection unexpectedly")
        return real_filter(*args, **kwargs)

    feed = ChangeFeed(layer, poll_seconds=0.05)

    async def scenario():
        channel = await subscribe(layer, f"worker-{worker.pk}-row")
        task = asyncio.create_task(feed.run())
        try:
            await asyncio.wait_for(feed.positioned.wait(), 5)
            monkeypatch.setattr(Change.objects, "filter", filter_failing_once)
            await sync_to_async(record_change)(worker.pk, fields=["instance_type"])
            return await asyncio.wait_for(layer.receive(channel), 5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    with caplog.at_level(logging.ERROR, logger="fleet.live.feed"):
        message = run(scenario)
    feed.close()
    assert failures
    assert "change feed failed" in caplog.text
    assert message["event"] == f"worker-{worker.pk}-row"  # the change was read after all


@pytest.mark.django_db(transaction=True)
def test_a_fragment_that_fails_to_render_is_skipped_and_its_pages_reload(
    feed, layer, worker, monkeypatch, caplog
):
    def render_but_aws(worker, fragment, **options):
        if fragment == "aws":
            raise TemplateSyntaxError("broken aws card")
        return fragments.render_worker_fragment(worker, fragment, **options)

    monkeypatch.setattr(live_feed, "render_worker_fragment", render_but_aws)

    async def scenario():
        await feed.step()
        row = await subscribe(layer, f"worker-{worker.pk}-row")
        aws = await subscribe(layer, f"worker-{worker.pk}-aws")
        change = await sync_to_async(commit)(worker.pk, ["instance_type"])
        await feed.step()
        return change, await received(layer, row), await received(layer, aws)

    with caplog.at_level(logging.ERROR, logger="fleet.live.feed"):
        change, row_messages, aws_messages = run(scenario)
    assert [(m["type"], m["event"]) for m in row_messages] == [
        (live_feed.FRAGMENT, f"worker-{worker.pk}-row")
    ]
    assert aws_messages == [live_feed.reload_message(change.pk, "render-failed")]
    assert f"could not render worker-{worker.pk}-aws" in caplog.text
    assert "broken aws card" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_progress_line_that_fails_to_render_reloads_the_fleets_pages(feed, layer, monkeypatch):
    def broken_stats(self):
        raise ZeroDivisionError("no workers")

    monkeypatch.setattr(WorkerQuerySet, "stats", broken_stats)

    async def scenario():
        await feed.step()
        fleet = await subscribe(layer, "fleet")
        change = await sync_to_async(commit)(None, ["run"], ChangeKind.FLEET)
        await feed.step()
        return change, await received(layer, fleet)

    change, messages = run(scenario)
    assert messages == [live_feed.reload_message(change.pk, "render-failed")]


@pytest.mark.django_db(transaction=True)
def test_the_feed_never_reads_the_same_rows_twice_even_when_a_step_fails(
    feed, layer, worker, monkeypatch
):
    """Rendering that fails every time (a broken query, a bug) must not wedge the feed: it moves
    past the rows, the pages they concern reload, and later changes flow again."""
    attempts = []

    def failing_render(changes, *options):
        attempts.append([change.pk for change in changes])
        raise DataError("a poisoned row")

    monkeypatch.setattr(live_feed, "render_changes", failing_render)

    async def scenario():
        await feed.step()
        row = await subscribe(layer, f"worker-{worker.pk}-row")
        fleet = await subscribe(layer, "fleet")
        first = await sync_to_async(commit)(worker.pk, ["instance_type"])
        created = await sync_to_async(commit)(worker.pk + 1, [], "created")
        await feed.step()
        await feed.step()
        after_failure = await received(layer, row), await received(layer, fleet)
        monkeypatch.undo()
        later = await sync_to_async(commit)(worker.pk, ["name"])
        await feed.step()
        return first, created, later, after_failure, await received(layer, row)

    first, created, later, (row_reloads, fleet_reloads), after = run(scenario)
    assert attempts == [[first.pk, created.pk]]  # read once, never again
    assert row_reloads == [live_feed.reload_message(first.pk, "render-failed")]
    assert fleet_reloads == [live_feed.reload_message(created.pk, "render-failed")]
    assert [(m["event"], m["id"]) for m in after] == [(f"worker-{worker.pk}-row", later.pk)]
    assert feed.last_id == later.pk


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("change_ids_reset")
def test_the_ids_looked_for_again_are_bounded_in_number(feed, layer, worker, monkeypatch):
    """A jump in the id sequence leaves at most MAX_GAPS ids to look for: the highest, the ones
    most likely still to commit. Giving up the others makes every page reload, in case."""
    monkeypatch.setattr(live_feed, "MAX_GAPS", 10)

    async def scenario():
        await feed.step()
        fleet = await subscribe(layer, "fleet")
        top = feed.last_id
        await sync_to_async(Change.objects.create)(
            id=top + 1000, worker_id=worker.pk, fields=["name"]
        )
        await feed.step()
        gaps = set(feed.gaps)
        late = await sync_to_async(Change.objects.create)(
            id=top + 995, worker_id=worker.pk, fields=["name"]
        )
        await feed.step()
        return top, gaps, late, set(feed.gaps), await received(layer, fleet)

    top, gaps, late, left, fleet_messages = run(scenario)
    assert gaps == set(range(top + 990, top + 1000))
    assert left == gaps - {late.pk}  # still looked for, and found
    assert fleet_messages == [live_feed.reload_message(top + 1000, "changes-lost")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("change_ids_reset")
def test_a_huge_jump_in_the_id_sequence_costs_no_more_than_max_gaps(feed, worker):
    """Work and memory stay those of MAX_GAPS ids, however far the ids jump."""
    jump = 10**6

    async def scenario():
        await feed.step()
        top = feed.last_id
        await sync_to_async(Change.objects.create)(id=top + jump, worker_id=worker.pk, fields=[])
        tracemalloc.start()
        try:
            await feed.step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return top, set(feed.gaps), peak

    top, gaps, peak = run(scenario)
    assert len(gaps) == live_feed.MAX_GAPS
    assert max(gaps) == top + jump - 1
    assert peak < 10 * 2**20  # bytes; a gap per skipped id would take some 100 MB


@pytest.mark.django_db(transaction=True)
def test_the_process_has_one_feed_started_by_the_first_stream(layer, monkeypatch):
    monkeypatch.setattr(live_feed, "_feed", None)

    async def scenario():
        first = await start_feed()
        task = first.task
        second = await start_feed()
        try:
            return first, second, task, second.task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    first, second, task, again = run(scenario)
    first.close()
    assert first is second and task is again
    assert first.last_id is not None  # started means positioned at the end of the log


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_notify_wakes_the_feed(layer, worker):
    feed = ChangeFeed(layer, poll_seconds=60)  # only a NOTIFY can wake it within the test

    async def scenario():
        channel = await subscribe(layer, f"worker-{worker.pk}-row")
        task = asyncio.create_task(feed.run())
        try:
            await asyncio.wait_for(feed.positioned.wait(), 5)
            assert feed.listening.is_set()
            await sync_to_async(record_change)(worker.pk, fields=["instance_type"])
            # Well within the 60 s poll: only the NOTIFY can have delivered it.
            return await asyncio.wait_for(layer.receive(channel), 10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    message = run(scenario)
    feed.close()
    assert message["event"] == f"worker-{worker.pk}-row"


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_once_reaches_the_streams_of_two_web_processes(viewer, worker):
    session = session_of(viewer)
    env = {
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "*",
        "SECURE_SSL_REDIRECT": "false",
        "SECURE_COOKIES": "false",
        "DEBUG": "false",
        "AWS_REGIONS": ",".join(settings.AWS_REGIONS),
    }
    processes = []
    try:
        processes = [start_daphne(free_port(), env) for _ in range(2)]
        with contextlib.ExitStack() as stack:
            lines = []
            for process in processes:
                port = process.args[process.args.index("-p") + 1]
                http = stack.enter_context(httpx.Client(timeout=10))
                response = stack.enter_context(
                    http.stream(
                        "GET",
                        f"http://127.0.0.1:{port}/events/?workers={worker.pk}",
                        cookies={settings.SESSION_COOKIE_NAME: session},
                    )
                )
                assert response.status_code == 200
                stream_lines = response.iter_lines()
                next(line for line in stream_lines if line.startswith("id:"))  # opened
                lines.append(stream_lines)

            record_change(worker.pk, fields=["instance_type"])

            for stream_lines in lines:
                event = next(line for line in stream_lines if line.startswith("event:"))
                assert event == "event: fragments"  # the two fragments in one event
                data = "".join(iter(lambda lines=stream_lines: next(lines), ""))
                aws, row = f'id="worker-{worker.pk}-aws"', f'id="worker-{worker.pk}-row"'
                assert aws in data and row in data
                assert data.index(aws) < data.index(row)
    finally:
        for process in processes:
            stop(process)


# Admin edits go through the change log, in the admin's transaction.


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def change_form(worker: Worker, **changes) -> dict:
    return {
        "name": worker.name,
        "region": worker.region,
        "instance_id": worker.instance_id,
        "labs-TOTAL_FORMS": 0,
        "labs-INITIAL_FORMS": 0,
        **changes,
    }


def logged() -> list[tuple[int, str, list[str]]]:
    return list(Change.objects.values_list("worker_id", "kind", "fields"))


def test_an_admin_edit_logs_the_changed_fields(admin_client_, worker):
    url = f"/admin/fleet/worker/{worker.pk}/change/"
    response = admin_client_.post(url, change_form(worker, name="renamed"))
    assert response.status_code == 302
    assert logged() == [(worker.pk, "updated", ["name"])]


def test_an_admin_save_without_changes_logs_nothing(admin_client_, worker):
    admin_client_.post(f"/admin/fleet/worker/{worker.pk}/change/", change_form(worker))
    assert logged() == []


def test_an_admin_addition_is_logged_as_created(admin_client_, db):
    form = change_form(Worker(name="new", region="eu-west-1", instance_id="i-0aaaaaaaaaaaaaaaa"))
    assert admin_client_.post("/admin/fleet/worker/add/", form).status_code == 302
    assert logged() == [(Worker.objects.get(name="new").pk, "created", [])]


def test_an_admin_deletion_is_logged_as_deleted(admin_client_, worker):
    pk = worker.pk
    response = admin_client_.post(f"/admin/fleet/worker/{pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert logged() == [(pk, "deleted", [])]


def test_deleting_selected_workers_logs_each(admin_client_, worker):
    other = Worker.objects.create(name="two", region="us-east-1", instance_id="i-0b0b0b0b")
    response = admin_client_.post(
        "/admin/fleet/worker/",
        {"action": "delete_selected", "_selected_action": [worker.pk, other.pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert sorted(logged()) == [(worker.pk, "deleted", []), (other.pk, "deleted", [])]


def test_deleting_a_lab_in_the_admin_logs_its_workers_labs(admin_client_, worker):
    lab = Lab.objects.create(worker=worker, lab_id="l1", title="Lab")
    response = admin_client_.post(f"/admin/fleet/lab/{lab.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert logged() == [(worker.pk, "updated", ["labs"])]


def test_a_rolled_back_admin_edit_leaves_no_change_row(admin_user, worker, rf):
    request = rf.post("/")
    request.user = admin_user
    worker.name = "renamed"
    with pytest.raises(RuntimeError), transaction.atomic():
        WorkerAdmin(Worker, admin.site).save_model(
            request, worker, SimpleNamespace(changed_data=["name"]), change=True
        )
        assert logged() == [(worker.pk, "updated", ["name"])]  # written with the edit
        raise RuntimeError("forced")
    assert logged() == []
    assert Worker.objects.get(pk=worker.pk).name == "cml-worker-01"


def test_an_admin_request_that_fails_after_saving_logs_nothing(admin_client_, worker, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("the inlines could not be saved")

    monkeypatch.setattr(WorkerAdmin, "save_related", fail)
    with pytest.raises(RuntimeError):
        admin_client_.post(
            f"/admin/fleet/worker/{worker.pk}/change/", change_form(worker, name="renamed")
        )
    assert logged() == []
    assert Worker.objects.get(pk=worker.pk).name == "cml-worker-01"


@pytest.mark.django_db(transaction=True)
def test_a_cycles_samples_render_only_the_charts_someone_watches(feed, layer, worker, monkeypatch):
    """The cycle's end (a fleet change naming "samples") re-renders the chart windows that
    pages here follow, and the fleet chart of a watched window; nothing nobody follows."""
    renders = []
    original = live_feed.render_worker_fragment
    monkeypatch.setattr(
        live_feed,
        "render_worker_fragment",
        lambda w, fragment, **options: (
            renders.append((w.pk, fragment)) or original(w, fragment, **options)
        ),
    )

    async def scenario():
        await feed.step()
        charts = await subscribe(layer, f"worker-{worker.pk}-history-6h", "fleet-chart-24h")
        await sync_to_async(commit)(None, ["run"], ChangeKind.FLEET)  # progress: no samples
        await feed.step()
        before = await received(layer, charts)
        finish = await sync_to_async(commit)(None, ["run", "samples"], ChangeKind.FLEET)
        await feed.step()
        return finish, before, await received(layer, charts)

    finish, before, after = run(scenario)
    assert before == []
    assert renders == [(worker.pk, "history-6h")]  # the one watched window, nothing else
    assert sorted(m["event"] for m in after) == [
        "fleet-chart-24h",
        f"worker-{worker.pk}-history-6h",
    ]
    assert {m["id"] for m in after} == {finish.pk}
    assert all("<svg" in m["html"] or "No samples" in m["html"] for m in after)
