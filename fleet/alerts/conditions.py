"""Pure functions: is this alert's condition true now, and in what words?

Each takes a worker (anything with the Worker's attributes) and the facts the pass looked up
beside it, and returns the alert's message while its condition holds, else None. Conditions are
levels, not edges: the pass opens an alert when one starts holding and resolves it when it stops.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils import timezone

from fleet.durations import in_words
from fleet.models import (
    ActionName,
    AlertKind,
    CheckStatus,
    LicenseState,
    RunStatus,
    ServiceStatus,
    WorkerStatus,
)

LICENCE_WARNING_DAYS = 14
# EC2 states in which a worker that should run is down.
DOWN_STATES = {
    WorkerStatus.STOPPING,
    WorkerStatus.STOPPED,
    WorkerStatus.SHUTTING_DOWN,
    WorkerStatus.TERMINATED,
}
OUT_OF_COMPLIANCE = {LicenseState.OUT_OF_COMPLIANCE, LicenseState.EXPIRED}
STOPPED_ON_PURPOSE = {ActionName.STOP_WORKER, ActionName.TERMINATE_WORKER}


@dataclass(frozen=True)
class WorkerFacts:
    """What the audit log says about a worker's power (from succeeded or pending entries)."""

    last_power_action: str = ""  # the newest start / stop / terminate: its ActionName, or ""
    last_start_at: datetime | None = None  # the newest succeeded start (or EC2's running_since)
    last_idle_stop_at: datetime | None = None  # the newest succeeded stop with reason "idle"


def subject(worker) -> str:
    return worker.name or worker.instance_id


def worker_down(worker, facts: WorkerFacts) -> str | None:
    """Down: a failed EC2 status check while running, or not running when it should be (it was
    running, and no action is stopping it or stopped it last)."""
    name = subject(worker)
    if worker.status == WorkerStatus.RUNNING:
        failed = [
            label
            for label, check in (
                ("system", worker.system_check),
                ("instance", worker.instance_check),
            )
            if check == CheckStatus.IMPAIRED
        ]
        if failed:
            return f"{name} down: EC2 {' and '.join(failed)} status check failed"
        return None
    if worker.status not in DOWN_STATES or worker.pending_action:
        return None
    if facts.last_power_action in STOPPED_ON_PURPOSE:
        return None
    was_running = (
        facts.last_power_action == ActionName.START_WORKER
        or worker.running_since is not None
        or worker.labs_polled_at is not None  # CML answered once: it ran under our watch
    )
    return f"{name} down: EC2 instance {worker.status}" if was_running else None


def cml_unavailable(worker, after_cycles: int) -> str | None:
    if (
        worker.status != WorkerStatus.RUNNING
        or worker.service_status == ServiceStatus.AVAILABLE
        or worker.consecutive_failures < after_cycles
    ):
        return None
    why = f": {worker.last_error[:200]}" if worker.last_error else ""
    return (
        f"{subject(worker)}: CML {worker.service_status} for "
        f"{worker.consecutive_failures} cycles{why}"
    )


def licence_expiry(licence) -> datetime | None:
    """The earliest registration or authorization expiry in the licence summary (CML gives UTC
    without a zone, "2027-01-14 00:56:19"), or None."""
    found = []
    for key in ("registration_expires", "authorization_expires"):
        value = licence.get(key) if isinstance(licence, dict) else None
        if not isinstance(value, str) or not value:
            continue
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            continue
        found.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return min(found, default=None)


def licence(worker, now: datetime) -> str | None:
    if worker.license_state in OUT_OF_COMPLIANCE:
        return f"{subject(worker)}: licence {LicenseState(worker.license_state).label.lower()}"
    expiry = licence_expiry(worker.licence)
    if expiry is None or expiry > now + timedelta(days=LICENCE_WARNING_DAYS):
        return None
    if expiry <= now:
        return f"{subject(worker)}: licence expired on {expiry:%Y-%m-%d}"
    days = (expiry - now).days
    return f"{subject(worker)}: licence expires on {expiry:%Y-%m-%d} (in {days} days)"


def idle_warning(worker) -> str | None:
    if worker.idle_stop_at is None:
        return None
    at = timezone.localtime(worker.idle_stop_at)
    return f"{subject(worker)} idle: stops at {at:%H:%M} unless someone uses it or snoozes it"


def auto_paused(worker, facts: WorkerFacts) -> str | None:
    """Stopped by auto-pause since its last start, and not running again yet."""
    stopped = facts.last_idle_stop_at
    if stopped is None or worker.status == WorkerStatus.RUNNING:
        return None
    if facts.last_start_at is not None and facts.last_start_at > stopped:
        return None
    return f"{subject(worker)} stopped by auto-pause (idle) at {timezone.localtime(stopped):%H:%M}"


def undecided(worker) -> set[str]:
    """Kinds that cannot be judged now, so an open alert of that kind stays open: the licence
    while CML has not been read (a stopped worker's licence problem is still there)."""
    return {AlertKind.LICENCE} if worker.license_state == LicenseState.UNKNOWN else set()


def worker_alerts(worker, facts: WorkerFacts, now: datetime, after_cycles: int) -> dict[str, str]:
    """Every worker alert whose condition holds now: kind → message."""
    found = {
        AlertKind.WORKER_DOWN: worker_down(worker, facts),
        AlertKind.CML_UNAVAILABLE: cml_unavailable(worker, after_cycles),
        AlertKind.LICENCE: licence(worker, now),
        AlertKind.IDLE_WARNING: idle_warning(worker),
        AlertKind.AUTO_PAUSE: auto_paused(worker, facts),
    }
    return {kind: message for kind, message in found.items() if message}


def collection(
    newest_status: str | None,
    newest_message: str,
    last_success_at: datetime | None,
    now: datetime,
    overdue_after: timedelta,
) -> str | None:
    """The collector is failing (its newest finished fleet-wide cycle failed) or overdue (its
    last success is older than /healthz allows). Before any success there is nothing to be
    overdue against: a failing first cycle alerts through the first rule."""
    if newest_status == RunStatus.FAILED:
        return f"collection failing: {newest_message[:300] or 'the last fleet cycle failed'}"
    if last_success_at is not None and now - last_success_at > overdue_after:
        return (
            f"collection overdue: last successful fleet cycle {in_words(now - last_success_at)} ago"
        )
    return None


RECOVERY = {
    AlertKind.WORKER_DOWN: "{subject} back after {duration}",
    AlertKind.CML_UNAVAILABLE: "{subject}: CML available again after {duration}",
    AlertKind.LICENCE: "{subject}: licence in order again after {duration}",
    AlertKind.IDLE_WARNING: "{subject}: no longer stopping for idleness (used, snoozed or "
    "stopped) after {duration}",
    AlertKind.AUTO_PAUSE: "{subject} running again after {duration} paused",
    AlertKind.COLLECTION: "collection back after {duration}",
}


def recovery_message(
    kind: str, name: str, opened_at: datetime, now: datetime, status: str = WorkerStatus.RUNNING
) -> str:
    """ "cml-worker-07 back after 12 min": what the alert's resolution says. A CML alert ends
    when the worker stops too, which is no recovery of CML: that is said instead."""
    took = in_words(now - opened_at)
    if kind == AlertKind.CML_UNAVAILABLE and status != WorkerStatus.RUNNING:
        return f"{name}: CML alert closed after {took}: the worker is {status}"
    return RECOVERY[kind].format(subject=name, duration=took)
