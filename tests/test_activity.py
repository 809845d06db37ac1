"""The activity job against the simulated fleet (real HTTP): CML's telemetry read under the
size cap, our own polling never counted, only new events processed, failures kept apart."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.collection.activity import collect_activity
from fleet.collection.collect import collect
from fleet.models import Change, Worker
from tests.fleet_fixtures import cml_of, running


@pytest.fixture
def up(fleet_workers, fleet_settings):
    """The running workers, collected once so their CML endpoints are known."""
    collect(kind="metrics")
    return [Worker.objects.get(pk=w.pk) for w in running(fleet_settings, fleet_workers)]


def test_it_reads_every_running_worker_and_keeps_its_newest_activity(up, fleet_settings):
    for worker in up:
        cml_of(fleet_settings, worker).activity = "idle"
    summary = collect_activity()

    assert (summary.read, summary.failed) == (len(up), 0)
    for worker in Worker.objects.filter(pk__in=[w.pk for w in up]):
        history = cml_of(fleet_settings, worker).telemetry.events
        assert worker.activity_read_at is not None and worker.activity_error == ""
        # The seeded history has other users' lab work hours ago; our sign-ins are newer but
        # are our own, so the last activity is the newest event by someone else.
        assert worker.last_activity_at < timezone.now() - timedelta(hours=2)
        assert 1 <= len(worker.recent_activity) <= 10
        assert all(e["category"] != "user_activity" for e in worker.recent_activity)
        assert any(e["category"] == "user_activity" for e in history)  # ours, not counted
        assert worker.activity_seen_until >= worker.last_activity_at


def test_someone_using_a_worker_is_seen_at_the_next_read(up, fleet_settings):
    busy, quiet = up[0], up[1]
    cml_of(fleet_settings, quiet).activity = "idle"
    collect_activity()
    before = Worker.objects.get(pk=quiet.pk).last_activity_at
    cml_of(fleet_settings, busy).activity = "active"

    collect_activity()

    busy = Worker.objects.get(pk=busy.pk)
    assert timezone.now() - busy.last_activity_at < timedelta(minutes=1)
    assert busy.recent_activity[0]["category"] in ("start_node", "start_lab", "user_activity")
    assert Worker.objects.get(pk=quiet.pk).last_activity_at == before


def test_a_second_read_processes_only_what_is_new(up, fleet_settings):
    worker = up[0]
    cml = cml_of(fleet_settings, worker)
    cml.activity = "idle"
    collect_activity([worker.pk])
    first = Worker.objects.get(pk=worker.pk)
    cml.telemetry.someone_works()

    collect_activity([worker.pk])

    second = Worker.objects.get(pk=worker.pk)
    new = [e for e in second.recent_activity if e not in first.recent_activity]
    assert len(new) == 2  # the node start and the user's activity, not the history again
    assert len(second.recent_activity) == min(10, len(first.recent_activity) + 2)


def test_a_worker_whose_telemetry_fails_keeps_its_activity_and_says_why(up, fleet_settings):
    broken, fine = up[0], up[1]
    collect_activity()
    kept = Worker.objects.get(pk=broken.pk)
    cml_of(fleet_settings, broken).http_500 = True
    changes_before = Change.objects.count()

    summary = collect_activity()

    assert summary.failed == 1
    broken = Worker.objects.get(pk=broken.pk)
    assert broken.activity_error == "HTTP 500 from /users/admin/id"  # the first call made
    assert (broken.last_activity_at, broken.activity_read_at) == (
        kept.last_activity_at,
        kept.activity_read_at,
    )
    assert Worker.objects.get(pk=fine.pk).activity_error == ""
    assert Change.objects.filter(pk__gt=changes_before, worker_id=broken.pk).exists()


def test_a_history_over_the_size_cap_is_an_error_not_a_crash(up, fleet_settings, settings):
    settings.CML_MAX_RESPONSE_BYTES = 100_000
    worker = up[0]
    cml = cml_of(fleet_settings, worker)
    for _ in range(700):
        cml.telemetry.someone_works()

    collect_activity([worker.pk])

    assert Worker.objects.get(pk=worker.pk).activity_error.endswith(
        "answered more than 100,000 bytes"
    )


def test_odd_events_are_noted_and_the_rest_is_read(up, fleet_settings):
    worker = up[0]
    cml = cml_of(fleet_settings, worker)
    cml.telemetry.events.append({"category": "start_lab", "timestamp": "soon"})
    cml.telemetry.events.append("nonsense")
    cml.telemetry.someone_works()

    collect_activity([worker.pk])

    worker = Worker.objects.get(pk=worker.pk)
    assert "2 events without a category or a readable timestamp" in worker.activity_error
    assert timezone.now() - worker.last_activity_at < timedelta(minutes=1)
