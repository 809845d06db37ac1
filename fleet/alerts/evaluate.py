"""The alert pass: read the change log from the stored cursor, judge the workers it names on
their current state, open and resolve alerts, fill the outbox, and move the cursor, all in one
transaction holding the cursor row's lock, so two processes never open or notify twice.

Besides the workers the new changes name, a pass looks again at workers changed in the last
`LATE_COMMIT_WINDOW` (a change committed after a later-numbered one is not missed) and, every
`SWEEP_INTERVAL`, at every worker (a licence nears its expiry without any change). The
collection alert is judged on every pass: it is about time passing.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, OuterRef, Q, Subquery
from django.utils import timezone

from fleet.alerts import conditions
from fleet.alerts.conditions import WorkerFacts
from fleet.models import (
    ActionEntry,
    ActionName,
    ActionOutcome,
    Alert,
    AlertChannel,
    AlertCursor,
    AlertKind,
    Change,
    CollectionRun,
    Notification,
    NotificationEvent,
    NotificationStatus,
    RunStatus,
    Worker,
)
from fleet.models.alerts import FLEET_KINDS, WORKER_KINDS, alert_key
from fleet.models.changes import record_changes
from fleet.models.runs import overdue_after

log = logging.getLogger("fleet.alerts")

LATE_COMMIT_WINDOW = timedelta(seconds=60)
SWEEP_INTERVAL = timedelta(minutes=10)
POWER_ACTIONS = [ActionName.START_WORKER, ActionName.STOP_WORKER, ActionName.TERMINATE_WORKER]
IDLE_REASON = "idle"


@dataclass
class PassResult:
    opened: list[Alert] = field(default_factory=list)
    resolved: list[Alert] = field(default_factory=list)
    workers_judged: int = 0
    notifications: int = 0

    def summary(self) -> str:
        return (
            f"alerts: judged {self.workers_judged} workers, opened {len(self.opened)}, "
            f"resolved {len(self.resolved)}, {self.notifications} notifications queued"
        )


def with_facts(workers):
    """Workers annotated with what the audit log says about their power (WorkerFacts)."""
    entries = ActionEntry.objects.filter(worker=OuterRef("pk")).order_by("-started_at", "-id")
    power = entries.filter(
        action__in=POWER_ACTIONS, outcome__in=[ActionOutcome.SUCCEEDED, ActionOutcome.PENDING]
    )
    starts = entries.filter(action=ActionName.START_WORKER, outcome=ActionOutcome.SUCCEEDED)
    idle_stops = entries.filter(
        action=ActionName.STOP_WORKER, outcome=ActionOutcome.SUCCEEDED, reason=IDLE_REASON
    )
    return workers.annotate(
        fact_power=Subquery(power.values("action")[:1]),
        fact_start=Subquery(starts.values("finished_at")[:1]),
        fact_idle_stop=Subquery(idle_stops.values("finished_at")[:1]),
    )


def facts_of(worker) -> WorkerFacts:
    starts = [t for t in (worker.fact_start, worker.running_since) if t is not None]
    return WorkerFacts(
        last_power_action=worker.fact_power or "",
        last_start_at=max(starts, default=None),
        last_idle_stop_at=worker.fact_idle_stop,
    )


def run_pass(now: datetime | None = None) -> PassResult:
    """One pass (see the module's docstring); safe to run from any number of processes."""
    now = now or timezone.now()
    result = PassResult()
    with transaction.atomic():
        AlertCursor.objects.bulk_create([AlertCursor(pk=1)], ignore_conflicts=True)
        cursor = AlertCursor.objects.select_for_update().get(pk=1)
        top = Change.objects.aggregate(top=Max("id"))["top"] or 0
        sweep = cursor.swept_at is None or now - cursor.swept_at >= SWEEP_INTERVAL
        if sweep:
            workers = Worker.objects.all()
            cursor.swept_at = now
        else:
            named = (
                Change.objects.filter(
                    Q(id__gt=cursor.change_id, id__lte=top)
                    | Q(created_at__gte=now - LATE_COMMIT_WINDOW),
                    worker_id__isnull=False,
                )
                .values_list("worker_id", flat=True)
                .distinct()
            )
            workers = Worker.objects.filter(pk__in=list(named))
        channels = list(AlertChannel.objects.filter(enabled=True))
        judge = Judge(now, channels, result)
        for worker in with_facts(workers).order_by("pk"):
            wanted = conditions.worker_alerts(
                worker, facts_of(worker), now, settings.ALERT_AFTER_CYCLES
            )
            judge.settle(worker, WORKER_KINDS, wanted, conditions.undecided(worker))
            result.workers_judged += 1
        judge.settle(None, FLEET_KINDS, fleet_alerts(now))
        # The worker pages list their open alerts: tell them, in this transaction.
        touched = {alert.worker_id for alert in result.opened + result.resolved}
        record_changes((pk, "updated", ["alerts"]) for pk in sorted(touched - {None}))
        cursor.change_id = max(cursor.change_id, top)
        cursor.save(update_fields=["change_id", "swept_at"])
    if result.opened or result.resolved:
        log.info("%s", result.summary())
    return result


def fleet_alerts(now: datetime) -> dict[str, str]:
    runs = CollectionRun.objects.fleet_wide()
    newest = (
        runs.filter(status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED])
        .order_by("-started_at")
        .only("status", "message")
        .first()
    )
    success = runs.last_fleet_success()
    message = conditions.collection(
        newest.status if newest else None,
        newest.message if newest else "",
        success.finished_at if success else None,
        now,
        overdue_after(),
    )
    return {AlertKind.COLLECTION: message} if message else {}


class Judge:
    """Opens and resolves the alerts of one subject (a worker or the fleet) and queues their
    notifications; used inside the pass's transaction."""

    def __init__(self, now: datetime, channels: list[AlertChannel], result: PassResult):
        self.now = now
        self.channels = channels
        self.result = result
        # Open alerts are few (kinds × workers in trouble): one query for the whole pass.
        self.open_alerts = {a.key: a for a in Alert.objects.open()}

    def settle(self, worker: Worker | None, kinds, wanted: dict[str, str], keep=()) -> None:
        """Open the wanted alerts not yet open; resolve the open ones no longer wanted, but
        those of a kind in `keep` (cannot be judged now)."""
        worker_id = worker.pk if worker else None
        keys = [alert_key(kind, worker_id) for kind in kinds]
        open_alerts = {a.kind: a for k in keys if (a := self.open_alerts.get(k))}
        for kind, message in wanted.items():
            if kind not in open_alerts:
                self.open(worker, kind, message)
        for kind, alert in open_alerts.items():
            if kind not in wanted and kind not in keep:
                self.resolve(worker, alert)

    def open(self, worker: Worker | None, kind: str, message: str) -> None:
        alert = Alert.objects.create(
            kind=kind,
            key=alert_key(kind, worker.pk if worker else None),
            worker=worker,
            message=message,
            opened_at=self.now,
        )
        status = self.status_for(worker)
        rows = [
            Notification(
                alert=alert,
                channel=channel,
                event=NotificationEvent.OPENED,
                status=status,
                next_attempt_at=self.now,
                created_at=self.now,
            )
            for channel in self.channels
            if channel.takes(kind, worker)
        ]
        Notification.objects.bulk_create(rows)
        self.result.opened.append(alert)
        self.result.notifications += sum(r.status == NotificationStatus.PENDING for r in rows)

    def resolve(self, worker: Worker | None, alert: Alert) -> None:
        """Resolve, and tell the channels that were told of the opening (muted stays muted)."""
        name = conditions.subject(worker) if worker else "fleet"
        alert.resolved_at = self.now
        alert.recovery_message = conditions.recovery_message(
            alert.kind, name, alert.opened_at, self.now, worker.status if worker else "running"
        )
        alert.save(update_fields=["resolved_at", "recovery_message"])
        muted_now = self.status_for(worker) == NotificationStatus.MUTED
        rows = [
            Notification(
                alert=alert,
                channel_id=opened.channel_id,
                event=NotificationEvent.RESOLVED,
                status=(
                    NotificationStatus.MUTED
                    if muted_now or opened.status == NotificationStatus.MUTED
                    else NotificationStatus.PENDING
                ),
                next_attempt_at=self.now,
                created_at=self.now,
            )
            for opened in alert.notifications.filter(
                event=NotificationEvent.OPENED, channel__enabled=True
            )
        ]
        Notification.objects.bulk_create(rows)
        self.result.resolved.append(alert)
        self.result.notifications += sum(r.status == NotificationStatus.PENDING for r in rows)

    def status_for(self, worker: Worker | None) -> str:
        """Muted while the worker's mute (maintenance window) lasts: recorded, never sent."""
        if worker is not None and worker.muted_until and worker.muted_until > self.now:
            return NotificationStatus.MUTED
        return NotificationStatus.PENDING
