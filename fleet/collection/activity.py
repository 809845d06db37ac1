"""The activity job: read every running worker's CML telemetry and keep its newest activity.

Runs on its own schedule (ACTIVITY_INTERVAL_SECONDS), beside the collection cycles, and writes
only the Activity field group, in one transaction with its change-log rows. A worker whose
telemetry cannot be read keeps its last activity and says why in `activity_error`; the idle
rule then treats its activity as unknown and never stops it on that basis.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fleet.collection.observe import run_cml_reader
from fleet.collection.sources.cml import CMLTarget, TelemetryObservation, observe_telemetry
from fleet.collection.sources.cml_telemetry import merge_recent, read_activity
from fleet.models import Worker, WorkerStatus
from fleet.models.changes import record_changes
from fleet.models.field_groups import ACTIVITY

log = logging.getLogger(__name__)
ERROR_MAX = Worker._meta.get_field("activity_error").max_length


@dataclass(frozen=True)
class ActivitySummary:
    read: int
    failed: int
    changed: int

    def __str__(self) -> str:
        return f"activity read on {self.read} workers, {self.failed} failed, {self.changed} changed"


def collect_activity(pks: list[int] | None = None) -> ActivitySummary:
    """Read the telemetry of the running workers (or of `pks` among them) and save it."""
    workers = Worker.objects.filter(status=WorkerStatus.RUNNING).exclude(cml_endpoint="")
    if pks is not None:
        workers = workers.filter(pk__in=pks)
    workers = list(workers)
    targets = [CMLTarget(worker.pk, worker.cml_endpoint) for worker in workers]
    seen = run_cml_reader(observe_telemetry, targets) if targets else {}
    now = timezone.now()
    changed: dict[int, list[str]] = {}
    for worker in workers:
        fields = apply_activity(worker, seen[worker.pk], now)
        if fields:
            changed[worker.pk] = fields
    _save([worker for worker in workers if worker.pk in changed], changed)
    failed = sum(1 for observation in seen.values() if not observation.ok)
    summary = ActivitySummary(read=len(workers), failed=failed, changed=len(changed))
    log.info("%s", summary)
    return summary


def apply_activity(worker: Worker, seen: TelemetryObservation, now: datetime) -> list[str]:
    """Set the worker's Activity fields from one read; return the names of those that changed."""
    before = {name: getattr(worker, name) for name in ACTIVITY.fields}
    if not seen.ok:
        worker.activity_error = seen.error[:ERROR_MAX]
    else:
        read = read_activity(
            seen.events,
            own_user_id=seen.own_user_id,
            own_username=settings.CML_USERNAME,
            seen_until=worker.activity_seen_until,
            now=now,
        )
        newest = read.last_activity
        if newest is not None and (
            worker.last_activity_at is None or newest > worker.last_activity_at
        ):
            worker.last_activity_at = newest
        if read.relevant:
            worker.recent_activity = merge_recent(read.relevant, worker.recent_activity)
        if read.newest_seen is not None:
            worker.activity_seen_until = max(
                filter(None, (worker.activity_seen_until, read.newest_seen))
            )
        worker.activity_read_at = now
        worker.activity_error = "; ".join(read.notes)[:ERROR_MAX]
    return [name for name in ACTIVITY.fields if getattr(worker, name) != before[name]]


def _save(workers: list[Worker], changed: dict[int, list[str]]) -> None:
    if not workers:
        return
    fields = sorted({name for names in changed.values() for name in names})
    with transaction.atomic():
        Worker.objects.bulk_update(workers, fields, batch_size=500)
        record_changes((pk, "updated", names) for pk, names in changed.items())
