"""The idle pass (every minute) and the activity task (every ACTIVITY_INTERVAL_SECONDS).

The pass applies the idle rule to every running worker: it records when each became idle, gives
the warning (`idle_stop_at`, which the pages and the alerts show) and, when the warning has run
out, stops the worker through the same audited action as the Stop button, as the system with
the reason "idle". One pass at a time across every process (a shared lock), so two collector
machines never stop one worker twice.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from fleet.actions.workers import stop_worker
from fleet.collection.activity import collect_activity
from fleet.collection.locks import exclusive
from fleet.idle.rule import IdleRule
from fleet.models import ActionOutcome, Worker, WorkerStatus
from fleet.models.changes import record_changes

log = logging.getLogger(__name__)

IDLE_LOCK = "fleet-idle-pass"
AUTO_PAUSE_ACTOR = "system (auto-pause)"
IDLE_REASON = "idle"


@dataclass(frozen=True)
class PassSummary:
    idle: int
    warned: int
    stopped: int

    def __str__(self) -> str:
        return f"{self.idle} idle, {self.warned} newly warned, {self.stopped} stopped"


def read_activity() -> str:
    """The activity task: read the telemetry, then apply the rule to what it found."""
    return f"{collect_activity()}; {idle_pass()}"


def idle_pass(now: datetime | None = None) -> str:
    with exclusive(IDLE_LOCK) as held:
        if not held:
            return "skipped: another idle pass is running"
        return str(_pass(IdleRule.configured(), now or timezone.now()))


PASS_FIELDS = ["idle_since", "idle_stop_at", "snooze_until", "muted_until"]
# What the rule reads: the pass runs every minute over every running worker, so it loads no more.
RULE_FIELDS = [
    *PASS_FIELDS,
    "status",
    "running_since",
    "last_activity_at",
    "activity_read_at",
    "auto_pause",
    "pending_action",
]


def _pass(rule: IdleRule, now: datetime) -> PassSummary:
    candidates = list(
        Worker.objects.filter(
            Q(status=WorkerStatus.RUNNING)
            | Q(idle_since__isnull=False)
            | Q(idle_stop_at__isnull=False)
            | Q(snooze_until__lte=now)
            | Q(muted_until__lte=now)
        ).only(*RULE_FIELDS)
    )
    changed: dict[int, list[str]] = {}
    due, warned = [], 0
    for worker in candidates:
        # An ended snooze or mute is cleared, so the pages that show it change with it.
        for name in ("snooze_until", "muted_until"):
            if getattr(worker, name) is not None and getattr(worker, name) <= now:
                setattr(worker, name, None)
                changed.setdefault(worker.pk, []).append(name)
        decision = rule.decide(worker, now)
        if worker.idle_stop_at is None and decision.idle_stop_at is not None:
            warned += 1
        for name in ("idle_since", "idle_stop_at"):
            if getattr(worker, name) != getattr(decision, name):
                setattr(worker, name, getattr(decision, name))
                changed.setdefault(worker.pk, []).append(name)
        if decision.stop:
            due.append(worker)
    if changed:
        with transaction.atomic():
            Worker.objects.bulk_update(
                [worker for worker in candidates if worker.pk in changed], PASS_FIELDS
            )
            record_changes((pk, "updated", fields) for pk, fields in changed.items())
    stopped = sum(_auto_pause(rule, worker, now) for worker in due)
    idle = sum(1 for worker in candidates if worker.idle_since is not None)
    return PassSummary(idle=idle, warned=warned, stopped=stopped)


def _auto_pause(rule: IdleRule, worker: Worker, now: datetime) -> bool:
    """Stop one worker whose warning ran out, if the rule still says so on fresh data."""
    worker = Worker.objects.get(pk=worker.pk)  # whole and fresh: the Stop action reads it
    if not rule.decide(worker, now).stop:
        return False
    entry = stop_worker(None, worker, actor=AUTO_PAUSE_ACTOR, reason=IDLE_REASON)
    log.info("auto-pause %s: %s %s", worker, entry.outcome, entry.message)
    return entry.outcome in (ActionOutcome.PENDING, ActionOutcome.SUCCEEDED)
