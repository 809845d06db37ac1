"""The alert conditions: pure functions of a worker's current state and its audit facts."""

from datetime import UTC, datetime, timedelta

import pytest

from fleet.alerts import conditions
from fleet.alerts.conditions import WorkerFacts
from fleet.durations import in_words
from fleet.models import AlertKind, RunStatus, Worker

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
START, STOP, TERMINATE = "start_worker", "stop_worker", "terminate_worker"


def worker(**fields) -> Worker:
    """An unsaved worker: the conditions never touch the database."""
    base = {"name": "cml-worker-07", "region": "us-east-1", "instance_id": "i-0123456789abcdef0"}
    return Worker(**{**base, **fields})


NO_FACTS = WorkerFacts()


def kinds(w: Worker, facts: WorkerFacts = NO_FACTS, after: int = 3) -> dict:
    return conditions.worker_alerts(w, facts, NOW, after)


def test_a_healthy_running_worker_raises_nothing():
    w = worker(status="running", system_check="ok", instance_check="ok", service_status="available")
    assert kinds(w) == {}


@pytest.mark.parametrize("check", ["system_check", "instance_check"])
def test_a_failed_status_check_while_running_is_down(check):
    w = worker(status="running", service_status="available", **{check: "impaired"})
    label = check.split("_")[0]
    assert kinds(w) == {
        AlertKind.WORKER_DOWN: f"cml-worker-07 down: EC2 {label} status check failed"
    }


@pytest.mark.parametrize("status", ["stopped", "stopping", "shutting-down", "terminated"])
def test_not_running_after_it_ran_is_down(status):
    ran = worker(status=status, labs_polled_at=NOW - timedelta(hours=1))
    assert kinds(ran)[AlertKind.WORKER_DOWN] == f"cml-worker-07 down: EC2 instance {status}"
    started_by_us = worker(status=status)
    assert AlertKind.WORKER_DOWN in kinds(started_by_us, WorkerFacts(last_power_action=START))


@pytest.mark.parametrize("action", [STOP, TERMINATE])
def test_stopped_or_terminated_by_an_action_is_not_down(action):
    w = worker(status="stopped", running_since=NOW - timedelta(hours=2))
    assert kinds(w, WorkerFacts(last_power_action=action)) == {}


def test_a_pending_action_or_a_worker_never_seen_running_is_not_down():
    assert kinds(worker(status="stopping", pending_action="stop", running_since=NOW)) == {}
    assert kinds(worker(status="stopped")) == {}  # imported stopped: nobody expects it to run
    assert kinds(worker(status="unknown", labs_polled_at=NOW)) == {}  # not observed yet


def test_cml_unavailable_needs_the_number_of_cycles():
    w = worker(status="running", service_status="unavailable", consecutive_failures=2)
    assert kinds(w, after=3) == {}
    w.consecutive_failures = 3
    w.last_error = "CML /system_information: connection refused"
    assert kinds(w, after=3) == {
        AlertKind.CML_UNAVAILABLE: "cml-worker-07: CML unavailable for 3 cycles: "
        "CML /system_information: connection refused"
    }
    w.status = "stopped"  # a stopped worker's CML is not expected to answer
    assert AlertKind.CML_UNAVAILABLE not in kinds(w, after=3)


@pytest.mark.parametrize(
    ("state", "words"), [("out_of_compliance", "out of compliance"), ("expired", "expired")]
)
def test_licence_out_of_compliance(state, words):
    w = worker(status="running", service_status="available", license_state=state)
    assert kinds(w) == {AlertKind.LICENCE: f"cml-worker-07: licence {words}"}


def test_licence_expiring_within_14_days_in_cmls_format():
    soon = {
        "registration_expires": "2027-01-14 00:56:19",
        "authorization_expires": "2026-12-10 08:00:00",
    }
    w = worker(license_state="licensed", licence=soon)
    assert conditions.licence(w, NOW) == "cml-worker-07: licence expires on 2026-12-10 (in 10 days)"
    w.licence = {"registration_expires": "2026-12-14T12:00:00Z"}  # exactly 15 days: not yet
    assert conditions.licence(w, NOW) is None
    w.licence = {"authorization_expires": "2026-11-28 00:00:00"}
    assert conditions.licence(w, NOW) == "cml-worker-07: licence expired on 2026-11-28"
    w.licence = {"registration_expires": "not a date", "authorization_expires": None}
    assert conditions.licence(w, NOW) is None


def test_idle_warning_while_a_stop_is_announced(settings):
    settings.TIME_ZONE = "UTC"
    w = worker(status="running", idle_stop_at=datetime(2026, 11, 29, 14, 32, tzinfo=UTC))
    assert kinds(w)[AlertKind.IDLE_WARNING] == (
        "cml-worker-07 idle: stops at 14:32 unless someone uses it or snoozes it"
    )
    w.idle_stop_at = None  # used, snoozed or stopped
    assert AlertKind.IDLE_WARNING not in kinds(w)


def test_auto_pause_holds_until_the_worker_runs_again():
    stopped_at = NOW - timedelta(minutes=5)
    facts = WorkerFacts(
        last_power_action=STOP,
        last_start_at=NOW - timedelta(hours=3),
        last_idle_stop_at=stopped_at,
    )
    w = worker(status="stopped", labs_polled_at=NOW)
    assert kinds(w, facts) == {
        AlertKind.AUTO_PAUSE: f"cml-worker-07 stopped by auto-pause (idle) at {stopped_at:%H:%M}"
    }
    assert kinds(worker(status="running"), facts) == {}
    started_again = WorkerFacts(
        last_power_action=START, last_start_at=NOW, last_idle_stop_at=stopped_at
    )
    assert AlertKind.AUTO_PAUSE not in kinds(w, started_again)


def test_collection_failing_or_overdue():
    limit = timedelta(minutes=12)
    assert conditions.collection(RunStatus.FAILED, "database gone", NOW, NOW, limit) == (
        "collection failing: database gone"
    )
    assert conditions.collection(RunStatus.SUCCEEDED, "", NOW - limit, NOW, limit) is None
    late = NOW - limit - timedelta(minutes=1)
    assert conditions.collection(RunStatus.SUCCEEDED, "", late, NOW, limit) == (
        "collection overdue: last successful fleet cycle 13 min ago"
    )
    assert conditions.collection(None, "", None, NOW, limit) is None  # a fresh install


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(seconds=30), "under a minute"),
        (timedelta(minutes=12, seconds=40), "12 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(hours=1, minutes=20), "1 h 20 min"),
        (timedelta(days=2, hours=3, minutes=5), "2 d 3 h"),
    ],
)
def test_durations(span, words):
    assert in_words(span) == words


def test_recovery_messages():
    opened = NOW - timedelta(minutes=12)
    assert conditions.recovery_message(AlertKind.WORKER_DOWN, "cml-worker-07", opened, NOW) == (
        "cml-worker-07 back after 12 min"
    )
    assert conditions.recovery_message(AlertKind.COLLECTION, "fleet", opened, NOW) == (
        "collection back after 12 min"
    )
    for kind in AlertKind:  # every kind has its recovery message
        assert "after 12 min" in conditions.recovery_message(kind, "w", opened, NOW)
