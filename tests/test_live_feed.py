"""The change feed: what it renders for a change and how often, where it sends it, what wakes it,
and that admin edits reach it through the change log."""

import asyncio
import contextlib
import logging
from types import SimpleNamespace

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import admin
from django.db import transaction

from fleet.admin import WorkerAdmin
from fleet.changelog import record_change, record_changes
from fleet.live import feed as live_feed
from fleet.live import fragments
from fleet.live.feed import ChangeFeed, start_feed
from fleet.live.fragments import FRAGMENT_FIELDS, WORKER_FRAGMENTS, fragments_for
from fleet.models import FLEET_CHANGE, Change, CollectionRun, Lab, Worker
from tests.browser_fixtures import free_port, start_daphne, stop
from tests.live_fixtures import open_stream, opened, parse_sse, run, session_of

ALL = set(WORKER_FRAGMENTS)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["status"], {"row", "aws"}),
        (["labs"], {"labs", "row"}),
        (["cml_version"], {"cml"}),
        (["name"], {"row"}),
        (["cpu_percent"], {"row", "aws", "history"}),
        (["nodes_running", "last_error"], {"cml", "history"}),
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
    assert claimed - names == {"labs", "actions"}  # lab rows, audit entries; else a typo
    assert set(FRAGMENT_FIELDS) == ALL


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
        await sync_to_async(record_change)(worker.pk, fields=["status"])
        await feed.step()
        texts = [
            await stream.read_until(lambda t: "-row\n" in t and "-aws\n" in t) for stream in streams
        ]
        for stream in streams:
            await stream.disconnect()
        return texts

    texts = run(scenario)
    assert sorted(renders) == ["aws", "row"]
    for text in texts:
        assert sorted(e.event for e in parse_sse(text)[0]) == [
            f"worker-{worker.pk}-aws",
            f"worker-{worker.pk}-row",
        ]


@pytest.mark.django_db(transaction=True)
def test_several_changes_of_a_worker_in_one_step_render_its_fragments_once(
    feed, layer, worker, monkeypatch
):
    renders = []
    monkeypatch.setattr(
        live_feed, "render_worker_fragment", lambda w, fragment: renders.append(fragment) or ""
    )

    async def scenario():
        await feed.step()
        channel = await subscribe(layer, f"worker-{worker.pk}-row", f"worker-{worker.pk}-cml")
        await sync_to_async(record_change)(worker.pk, fields=["status"])
        await sync_to_async(record_change)(worker.pk, fields=["cml_version"])
        await feed.step()
        return await received(layer, channel)

    messages = run(scenario)
    assert sorted(renders) == ["aws", "cml", "row"]
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
        await sync_to_async(record_change)(FLEET_CHANGE, fields=["run"])
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
def test_the_feed_logs_a_failure_and_carries_on(layer, worker, monkeypatch, caplog):
    monkeypatch.setattr(live_feed, "RESTART_SECONDS", 0.05)
    real_render = live_feed.render_changes
    failures = []

    def render_failing_once(changes):
        if not failures:
            failures.append(True)
            raise RuntimeError("template trouble")
        return real_render(changes)

    monkeypatch.setattr(live_feed, "render_changes", render_failing_once)
    feed = ChangeFeed(layer, poll_seconds=0.05)

    async def scenario():
        channel = await subscribe(layer, f"worker-{worker.pk}-row")
        task = asyncio.create_task(feed.run())
        try:
            await asyncio.wait_for(feed.positioned.wait(), 5)
            await sync_to_async(record_change)(worker.pk, fields=["status"])
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
    assert message["event"] == f"worker-{worker.pk}-row"  # the failed change was read again


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
            await sync_to_async(record_change)(worker.pk, fields=["status"])
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

            record_change(worker.pk, fields=["status"])

            for stream_lines in lines:
                event = next(line for line in stream_lines if line.startswith("event:"))
                assert event == f"event: worker-{worker.pk}-aws"  # aws, then row: in id order
                event = next(line for line in stream_lines if line.startswith("event:"))
                assert event == f"event: worker-{worker.pk}-row"
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
