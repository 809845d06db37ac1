"""The last step of the collection: write one cycle's results in one transaction, in a number of
queries that does not grow with the number of workers."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from fleet.changelog import record_changes
from fleet.collection.derive import LAB_FIELDS
from fleet.models import FLEET_CHANGE, ChangeKind, CollectionRun, Lab, RunStatus, Sample, Worker

BATCH_SIZE = 500


@dataclass
class CycleResult:
    """What derive made of one cycle, ready to be written."""

    changes: dict[int, dict[str, Any]] = field(default_factory=dict)  # worker pk → field → value
    lab_upserts: list[Lab] = field(default_factory=list)
    lab_deletes: list[int] = field(default_factory=list)
    labs_changed: set[int] = field(default_factory=set)  # workers whose labs rows changed
    polled: list[int] = field(default_factory=list)  # every worker observed this cycle
    labs_read: list[int] = field(default_factory=list)  # workers whose labs were read
    errors: dict[str, str] = field(default_factory=dict)  # worker pk → error

    @property
    def changed_workers(self) -> set[int]:
        """Workers with changed fields or changed labs (`changes` holds no empty entries)."""
        return set(self.changes) | self.labs_changed


def persist(run: CollectionRun, workers: list[Worker], result: CycleResult, now: datetime) -> None:
    """Save the changed workers (only their changed fields), the labs, the change log and the
    finished run, all or nothing."""
    changed = [worker for worker in workers if worker.pk in result.changes]
    changed_fields = sorted({name for pk in result.changes for name in result.changes[pk]})
    for worker in changed:
        for name, value in result.changes[worker.pk].items():
            setattr(worker, name, value)

    with transaction.atomic():
        if changed:
            Worker.objects.bulk_update(changed, changed_fields, batch_size=BATCH_SIZE)
        if result.polled:
            Worker.objects.filter(pk__in=result.polled).update(last_polled_at=now)
            polled = set(result.polled)
            Sample.objects.bulk_create(
                (Sample.of(worker, now) for worker in workers if worker.pk in polled),
                batch_size=BATCH_SIZE,
            )
        if result.labs_read:
            Worker.objects.filter(pk__in=result.labs_read).update(labs_polled_at=now)
        if result.lab_upserts:
            Lab.objects.bulk_create(
                result.lab_upserts,
                update_conflicts=True,
                unique_fields=["worker", "lab_id"],
                update_fields=LAB_FIELDS,
                batch_size=BATCH_SIZE,
            )
        if result.lab_deletes:
            Lab.objects.filter(pk__in=result.lab_deletes).delete()
        record_changes(
            [(FLEET_CHANGE, ChangeKind.UPDATED, ["run"])]  # the progress line: finished
            + [
                (pk, ChangeKind.UPDATED, _logged_fields(result, pk))
                for pk in sorted(result.changed_workers)
            ]
        )
        run.status = RunStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.workers_seen = run.workers_done = len(workers)
        run.workers_changed = len(result.changed_workers)
        run.workers_failed = len(result.errors)
        run.errors = result.errors
        run.save()


def _logged_fields(result: CycleResult, pk: int) -> list[str]:
    fields = list(result.changes.get(pk, {}))
    if pk in result.labs_changed:
        fields.append("labs")
    return fields
