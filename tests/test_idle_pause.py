"""Auto-pause end to end against the simulated fleet: activity read from CML, the warning,
then the stop through the audited Stop action; snooze, mid-action, concurrency."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ

from fleet.actions import workers as worker_actions
from fleet.collection.activity import collect_activity
from fleet.idle.pause import AUTO_PAUSE_ACTOR, idle_pass, read_activity
from fleet.models import ActionEntry, Change, Worker
from tests.action_fixtures import of_state, run_queued
from tests.fleet_fixtures import cml_of


@pytest.fixture
def idle_worker(collected, fleet_settings, monkeypatch):
    """A running worker nobody has used for hours, started hours ago, with auto-pause on."""
    monkeypatch.setattr(worker_actions, "POLL_SECONDS", 0.05)
    worker = of_state(collected, "running")
    cml = cml_of(fleet_settings, worker)
    cml.activity = "idle"
    cml.telemetry.events.clear()  # the simulated fleet lives for the module: forget its past
    cml.telemetry.record("start_lab", "jdoe", timezone.now() - timedelta(hours=3))
    Worker.objects.filter(pk=worker.pk).update(
        auto_pause=True, running_since=timezone.now() - timedelta(hours=3)
    )
    collect_activity([worker.pk])
    return Worker.objects.get(pk=worker.pk)


def test_an_idle_worker_is_warned_then_stopped_as_the_system_with_the_reason_idle(
    idle_worker, settings, django_capture_on_commit_callbacks
):
    now = timezone.now()
    assert idle_pass(now) == "1 idle, 1 newly warned, 0 stopped"
    warned = Worker.objects.get(pk=idle_worker.pk)
    assert warned.idle_stop_at == now + timedelta(minutes=settings.IDLE_WARNING_MINUTES)
    assert warned.idle_since <= now and warned.status == "running"
    change = Change.objects.filter(worker_id=warned.pk).latest("id")
    assert {"idle_since", "idle_stop_at"} <= set(change.fields)
    assert idle_pass(now + timedelta(minutes=1)).endswith("0 stopped")  # still warning

    with django_capture_on_commit_callbacks(execute=True):
        result = idle_pass(warned.idle_stop_at)

    assert result.endswith("1 stopped")
    entry = ActionEntry.objects.get(worker=warned)
    assert (entry.action, entry.username, entry.reason, entry.user) == (
        "stop_worker",
        AUTO_PAUSE_ACTOR,
        "idle",
        None,
    )
    run_queued()
    stopped = Worker.objects.get(pk=warned.pk)
    assert stopped.status == "stopped"
    idle_pass(warned.idle_stop_at + timedelta(minutes=1))
    stopped.refresh_from_db()
    assert (stopped.idle_since, stopped.idle_stop_at) == (None, None)
    assert stopped.pause_counts() == {"paused": 1, "started": 0}


def test_use_during_the_warning_keeps_it_running(idle_worker, fleet_settings):
    now = timezone.now()
    idle_pass(now)
    cml_of(fleet_settings, idle_worker).telemetry.someone_works()
    collect_activity([idle_worker.pk])

    assert idle_pass(now + timedelta(minutes=20)) == "0 idle, 0 newly warned, 0 stopped"
    worker = Worker.objects.get(pk=idle_worker.pk)
    assert (worker.idle_since, worker.idle_stop_at, worker.status) == (None, None, "running")
    assert not ActionEntry.objects.exists()


def test_the_activity_task_reads_then_applies_the_rule(idle_worker):
    assert read_activity().endswith("1 idle, 1 newly warned, 0 stopped")


def test_a_snooze_from_the_page_takes_the_warning_back(idle_worker, client, operator):
    now = timezone.now()
    idle_pass(now)
    client.force_login(operator)

    response = client.post(f"/workers/{idle_worker.pk}/snooze", {"hours": "2"})

    assert response.status_code == 302
    worker = Worker.objects.get(pk=idle_worker.pk)
    assert worker.idle_stop_at is None
    assert timedelta(minutes=119) < worker.snooze_until - now < timedelta(minutes=121)
    assert idle_pass(now + timedelta(minutes=20)).endswith("0 newly warned, 0 stopped")
    entry = ActionEntry.objects.get()
    assert (entry.action, entry.username, entry.outcome) == ("snooze_worker", "otto", "succeeded")
    # When the snooze ends it is cleared (the pages change with it) and, with the activity
    # read again, the warning comes again.
    Worker.objects.filter(pk=worker.pk).update(snooze_until=now + timedelta(minutes=5))
    assert idle_pass(now + timedelta(minutes=6)) == "1 idle, 1 newly warned, 0 stopped"
    assert Worker.objects.get(pk=worker.pk).snooze_until is None


def test_a_worker_in_the_middle_of_another_action_is_not_stopped(idle_worker):
    now = timezone.now()
    idle_pass(now)
    Worker.objects.filter(pk=idle_worker.pk).update(pending_action="register")

    assert idle_pass(now + timedelta(minutes=20)).endswith("0 stopped")
    assert not ActionEntry.objects.exists()
    assert Worker.objects.get(pk=idle_worker.pk).idle_stop_at is not None  # still warned


def test_a_worker_started_less_than_the_threshold_ago_is_not_idle(idle_worker):
    Worker.objects.filter(pk=idle_worker.pk).update(
        running_since=timezone.now() - timedelta(minutes=59)
    )
    assert idle_pass() == "0 idle, 0 newly warned, 0 stopped"


def test_a_muted_worker_is_still_paused_and_its_mute_ends_on_time(idle_worker):
    now = timezone.now()
    Worker.objects.filter(pk=idle_worker.pk).update(muted_until=now + timedelta(minutes=30))
    idle_pass(now)
    assert idle_pass(now + timedelta(minutes=16)).endswith("1 stopped")
    idle_pass(now + timedelta(minutes=31))
    assert Worker.objects.get(pk=idle_worker.pk).muted_until is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_passes_at_once_stop_the_worker_once(idle_worker):
    now = timezone.now()
    idle_pass(now)
    due = now + timedelta(minutes=20)
    results, start = [], threading.Barrier(2)

    def run():
        try:
            start.wait()
            results.append(idle_pass(due))
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert ActionEntry.objects.filter(action="stop_worker", reason="idle").count() == 1
    assert sum(result.endswith("1 stopped") for result in results) == 1
    OrmQ.objects.all().delete()
