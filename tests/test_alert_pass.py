"""The alert pass: alerts opened from the change log, never twice while open, resolved with
their recovery message, the cursor, mutes, channel filters and the fleet's collection alert."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from fleet.alerts.evaluate import SWEEP_INTERVAL, run_pass
from fleet.models import (
    ActionEntry,
    Alert,
    AlertChannel,
    AlertCursor,
    AlertKind,
    Change,
    CollectionRun,
    Notification,
    NotificationStatus,
    RunStatus,
)
from fleet.models.changes import record_change

pytestmark = pytest.mark.django_db


def change(worker, **fields) -> None:
    """Change the worker as the collection would: its row and the change log together."""
    with transaction.atomic():
        for name, value in fields.items():
            setattr(worker, name, value)
        worker.save(update_fields=list(fields))
        record_change(worker.pk, fields=list(fields))


def unavailable(worker) -> None:
    change(
        worker,
        status="running",
        service_status="unavailable",
        consecutive_failures=3,
        last_error="CML /system_information: connection refused",
    )


def statuses(alert: Alert) -> dict[tuple[str, str], str]:
    return {(n.channel.name, n.event): n.status for n in alert.notifications.all()}


def test_an_alert_opens_once_and_resolves_with_its_recovery_message(worker, channel):
    t0 = timezone.now()
    unavailable(worker)

    first = run_pass(now=t0)
    assert [(a.kind, a.key, a.worker) for a in first.opened] == [
        (AlertKind.CML_UNAVAILABLE, f"cml_unavailable:{worker.pk}", worker)
    ]
    alert = first.opened[0]
    assert alert.message == (
        "cml-worker-01: CML unavailable for 3 cycles: CML /system_information: connection refused"
    )
    assert statuses(alert) == {("ops webhook", "opened"): NotificationStatus.PENDING}

    change(worker, consecutive_failures=4)  # still down: a change, but no second alert
    again = run_pass(now=t0 + timedelta(minutes=5))
    assert again.opened == [] and again.resolved == []
    assert Alert.objects.count() == 1

    change(worker, service_status="available", consecutive_failures=0, last_error="")
    done = run_pass(now=t0 + timedelta(minutes=12))
    alert.refresh_from_db()
    assert done.resolved == [alert]
    assert alert.resolved_at == t0 + timedelta(minutes=12)
    assert alert.recovery_message == "cml-worker-01: CML available again after 12 min"
    assert statuses(alert) == {
        ("ops webhook", "opened"): NotificationStatus.PENDING,
        ("ops webhook", "resolved"): NotificationStatus.PENDING,
    }

    unavailable(worker)  # a new occurrence is a new alert
    run_pass(now=t0 + timedelta(minutes=20))
    assert Alert.objects.filter(kind=AlertKind.CML_UNAVAILABLE).count() == 2
    assert Alert.objects.open().count() == 1


def test_the_cursor_follows_the_change_log_and_only_named_workers_are_judged(worker, channel):
    t0 = timezone.now() + timedelta(hours=1)  # past the late-commit window of these changes
    run_pass(now=t0)  # the first pass looks at every worker
    cursor = AlertCursor.objects.get()
    assert cursor.change_id == (Change.objects.last().pk if Change.objects.exists() else 0)
    assert cursor.swept_at == t0

    # Down without a change-log row: not judged until a change names it (or the next sweep).
    type(worker).objects.filter(pk=worker.pk).update(
        status="running", service_status="error", consecutive_failures=5
    )
    assert run_pass(now=t0 + timedelta(minutes=1)).workers_judged == 0
    assert not Alert.objects.exists()

    record_change(worker.pk, fields=["status"])
    result = run_pass(now=t0 + timedelta(minutes=2))
    assert result.workers_judged == 1 and len(result.opened) == 1
    # Up to the newest change it read; the "alerts" change it wrote itself is read next time.
    read = Change.objects.exclude(fields=["alerts"]).last().pk
    assert AlertCursor.objects.get().change_id == read
    assert Change.objects.last().fields == ["alerts"]

    # The sweep judges every worker every SWEEP_INTERVAL.
    sweep = run_pass(now=t0 + SWEEP_INTERVAL)
    assert sweep.workers_judged == 1 and sweep.opened == []


def test_a_late_committed_change_below_the_cursor_is_still_seen(worker):
    run_pass()
    type(worker).objects.filter(pk=worker.pk).update(
        status="running", service_status="error", consecutive_failures=5
    )
    late = Change.objects.create(worker_id=worker.pk, fields=["status"])
    cursor = AlertCursor.objects.get()
    cursor.change_id = late.pk + 10  # as if later-numbered changes had committed first
    cursor.save()
    assert len(run_pass().opened) == 1


def test_a_muted_worker_records_its_alerts_but_sends_nothing(worker, channel):
    now = timezone.now()
    change(worker, muted_until=now + timedelta(hours=2))
    unavailable(worker)
    alert = run_pass(now=now).opened[0]
    assert statuses(alert) == {("ops webhook", "opened"): NotificationStatus.MUTED}

    # Recovered after the window: the channel never heard of the opening, so the end stays muted.
    change(worker, service_status="available", consecutive_failures=0)
    run_pass(now=now + timedelta(hours=3))
    assert statuses(alert)[("ops webhook", "resolved")] == NotificationStatus.MUTED


def test_channels_take_their_kinds_and_their_workers_tag(worker, channel):
    def add(name: str, **fields) -> AlertChannel:
        found = AlertChannel(name=name, **fields)
        found.url = "json://127.0.0.1:9/x"
        found.save()
        return found

    add("licences only", kinds=[AlertKind.LICENCE])
    add("down and cml", kinds=[AlertKind.WORKER_DOWN, AlertKind.CML_UNAVAILABLE])
    add("training team", worker_tag="Team=training")
    add("switched off", enabled=False)
    unavailable(worker)
    alert = run_pass().opened[0]
    assert set(statuses(alert)) == {("ops webhook", "opened"), ("down and cml", "opened")}

    change(worker, service_status="available", consecutive_failures=0)
    run_pass()
    change(worker, tags={"Team": "training"})
    unavailable(worker)
    run_pass()
    alert = Alert.objects.open().get()
    assert {name for name, _ in statuses(alert)} == {"ops webhook", "down and cml", "training team"}


def test_auto_pause_and_not_down_when_stopped_by_the_idle_rule(worker, channel):
    t0 = timezone.now()
    change(worker, status="running", service_status="available", labs_polled_at=t0)
    ActionEntry.objects.create(
        action="stop_worker",
        worker=worker,
        target=str(worker),
        username="system",
        reason="idle",
        outcome="succeeded",
        started_at=t0,
        finished_at=t0,
    )
    change(worker, status="stopped", service_status="unknown")
    result = run_pass(now=t0 + timedelta(minutes=1))
    assert [a.kind for a in result.opened] == [AlertKind.AUTO_PAUSE]
    assert result.opened[0].message.startswith("cml-worker-01 stopped by auto-pause (idle) at ")

    change(worker, status="running")
    resolved = run_pass(now=t0 + timedelta(minutes=90)).resolved
    assert [a.recovery_message for a in resolved] == [
        "cml-worker-01 running again after 1 h 29 min paused"
    ]


def test_worker_down_and_back(worker, channel):
    t0 = timezone.now()
    change(worker, status="running", labs_polled_at=t0)
    run_pass(now=t0)
    change(worker, status="stopped")  # nobody stopped it through the product
    opened = run_pass(now=t0).opened
    assert [a.message for a in opened] == ["cml-worker-01 down: EC2 instance stopped"]
    change(worker, status="running")
    resolved = run_pass(now=t0 + timedelta(minutes=12)).resolved
    assert [a.recovery_message for a in resolved] == ["cml-worker-01 back after 12 min"]


def test_idle_warning_opens_and_resolves_when_the_stop_is_called_off(worker, channel, settings):
    settings.TIME_ZONE = "UTC"
    stop_at = timezone.now().replace(hour=14, minute=32)
    change(worker, status="running", service_status="available", idle_stop_at=stop_at)
    opened = run_pass().opened
    assert [a.message for a in opened] == [
        "cml-worker-01 idle: stops at 14:32 unless someone uses it or snoozes it"
    ]
    change(worker, idle_stop_at=None, snooze_until=timezone.now() + timedelta(hours=1))
    assert [a.kind for a in run_pass().resolved] == [AlertKind.IDLE_WARNING]


def test_collection_failing_then_back_is_one_fleet_alert(db, channel, settings):
    settings.POLL_INTERVAL_SECONDS = 300
    t0 = timezone.now()
    CollectionRun.objects.create(
        status=RunStatus.SUCCEEDED, started_at=t0 - timedelta(minutes=30), finished_at=t0
    )
    assert run_pass(now=t0).opened == []
    CollectionRun.objects.create(
        status=RunStatus.FAILED,
        started_at=t0 + timedelta(minutes=5),
        finished_at=t0 + timedelta(minutes=5),
        message="database connection lost",
    )
    opened = run_pass(now=t0 + timedelta(minutes=6)).opened
    assert [(a.key, a.worker, a.message) for a in opened] == [
        ("collection:fleet", None, "collection failing: database connection lost")
    ]
    assert statuses(opened[0]) == {("ops webhook", "opened"): NotificationStatus.PENDING}
    assert run_pass(now=t0 + timedelta(minutes=7)).opened == []

    CollectionRun.objects.create(
        status=RunStatus.SUCCEEDED,
        started_at=t0 + timedelta(minutes=10),
        finished_at=t0 + timedelta(minutes=11),
    )
    resolved = run_pass(now=t0 + timedelta(minutes=11)).resolved
    assert [a.recovery_message for a in resolved] == ["collection back after 5 min"]

    # Overdue: nothing new for longer than /healthz allows (2 × 5 min + 2 min).
    overdue = run_pass(now=t0 + timedelta(minutes=24)).opened
    assert [a.message for a in overdue] == [
        "collection overdue: last successful fleet cycle 13 min ago"
    ]


def test_the_database_refuses_a_second_open_alert_for_one_key(worker):
    Alert.objects.create(kind="licence", key=f"licence:{worker.pk}", worker=worker, message="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(kind="licence", key=f"licence:{worker.pk}", worker=worker, message="b")
    Alert.objects.update(resolved_at=timezone.now())
    Alert.objects.create(kind="licence", key=f"licence:{worker.pk}", worker=worker, message="c")
    assert Alert.objects.count() == 2


def test_one_notification_per_alert_channel_and_event(worker, channel):
    alert = Alert.objects.create(kind="licence", key="licence:1", worker=worker, message="a")
    Notification.objects.create(alert=alert, channel=channel, event="opened")
    with pytest.raises(IntegrityError), transaction.atomic():
        Notification.objects.create(alert=alert, channel=channel, event="opened")


def test_a_worker_lists_its_open_alerts(worker):
    old = Alert.objects.create(
        kind="licence", key="licence:x", worker=worker, message="a", resolved_at=timezone.now()
    )
    current = Alert.objects.create(kind="worker_down", key="down:x", worker=worker, message="b")
    assert list(worker.open_alerts()) == [current]
    assert old not in Alert.objects.open()


def test_a_licence_alert_stays_open_while_the_worker_is_stopped(worker, channel):
    change(worker, status="running", license_state="out_of_compliance", labs_polled_at=None)
    [alert] = run_pass().opened
    ActionEntry.objects.create(action="stop_worker", worker=worker, target="w", outcome="succeeded")
    change(worker, status="stopped", license_state="unknown", licence={})  # CML not read
    assert run_pass().resolved == []
    change(worker, status="running", license_state="licensed")
    assert run_pass().resolved == [alert]


def test_a_cml_alert_closed_by_a_stop_says_so(worker, channel):
    t0 = timezone.now()
    unavailable(worker)
    run_pass(now=t0)
    ActionEntry.objects.create(action="stop_worker", worker=worker, target="w", outcome="succeeded")
    change(worker, status="stopped", service_status="unknown", consecutive_failures=0)
    [alert] = run_pass(now=t0 + timedelta(minutes=3)).resolved
    assert (
        alert.recovery_message
        == "cml-worker-01: CML alert closed after 3 min: the worker is stopped"
    )
