"""The last step of the collection: write one cycle's results in one transaction, in a number of
queries that does not grow with the number of workers.

Should the database refuse a value all the same (`fleet.collection.fit` missed a case), the cycle is
written again worker by worker, each in its own savepoint: the workers the database still
refuses are recorded as failed, with its message, and every other worker is written.
"""

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from fleet.collection.bulk_update import bulk_update
from fleet.collection.derive import LAB_FIELDS
from fleet.collection.fit import Notes, text
from fleet.models import ChangeKind, CollectionRun, Lab, RunStatus, Sample, Worker
from fleet.models.changes import record_changes

log = logging.getLogger(__name__)

BATCH_SIZE = 500
# The database, or its driver, refusing a value: one worker's data is at fault, not the
# database. Other errors (connection lost, disk full) still fail the whole run, all or nothing.
REFUSED_VALUE_ERRORS = (DataError, IntegrityError, ValueError, TypeError, OverflowError)
WRITE_ERRORS = (DatabaseError, *REFUSED_VALUE_ERRORS)
REFUSAL_MAX = 300  # characters of the database's message kept on the worker


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


@dataclass
class Tally:
    """What one write of a cycle (the whole cycle, or one shard of it) adds to its run."""

    seen: int
    changed: int
    errors: dict[str, str]


def close_run(run: CollectionRun, tally: Tally) -> None:
    """The run is this one write: it succeeded with these counts."""
    run.status = RunStatus.SUCCEEDED
    run.finished_at = timezone.now()
    run.workers_seen = run.workers_done = tally.seen
    run.workers_changed = tally.changed
    run.workers_failed = len(tally.errors)
    run.errors = tally.errors
    run.save()


def persist(
    run: CollectionRun,
    workers: list[Worker],
    result: CycleResult,
    now: datetime,
    close: Callable[[CollectionRun, Tally], None] = close_run,
) -> None:
    """Save the changed workers (only their changed fields), the labs, the change log and the
    run (`close`: by default it is finished), all or nothing; if the database refuses a value,
    worker by worker."""
    changed = [worker for worker in workers if worker.pk in result.changes]
    changed_fields = sorted({name for pk in result.changes for name in result.changes[pk]})
    for worker in changed:
        for name, value in result.changes[worker.pk].items():
            setattr(worker, name, value)

    try:
        with transaction.atomic():
            if changed:
                bulk_update(changed, changed_fields, batch_size=BATCH_SIZE)
            if result.lab_upserts:
                _upsert_labs(result.lab_upserts)
            if result.lab_deletes:
                Lab.objects.filter(pk__in=result.lab_deletes).delete()
            _finish(run, workers, result, now, {}, close)
    except WRITE_ERRORS as error:
        if not refuses_a_value(error):
            raise
        log.warning(
            "run %s: the database refused a value (%s); writing worker by worker", run.pk, error
        )
        with transaction.atomic():
            refused = _write_each(result)
            _finish(run, workers, result, now, refused, close)


def refuses_a_value(error: Exception) -> bool:
    """Whether the error is the database (or its driver) refusing a value, not the database
    failing. PostgreSQL's cardinality violation (one upsert naming a row twice) is one too."""
    if isinstance(error, REFUSED_VALUE_ERRORS):
        return True
    return str(getattr(error.__cause__, "sqlstate", None) or "").startswith("21")


def _upsert_labs(labs: list[Lab]) -> None:
    Lab.objects.bulk_create(
        labs,
        update_conflicts=True,
        unique_fields=["worker", "lab_id"],
        update_fields=LAB_FIELDS,
        batch_size=BATCH_SIZE,
    )


def _write_each(result: CycleResult) -> dict[int, str]:
    """Write each changed worker and its labs in a savepoint; return the refused workers (pk →
    message), after recording the refusal on each of them as far as the database allows."""
    upserts: dict[int, list[Lab]] = defaultdict(list)
    for lab in result.lab_upserts:
        upserts[lab.worker_id].append(lab)
    deletes: dict[int, list[int]] = defaultdict(list)
    for pk, worker_id in Lab.objects.filter(pk__in=result.lab_deletes).values_list(
        "pk", "worker_id"
    ):
        deletes[worker_id].append(pk)

    refused: dict[int, str] = {}
    for pk in sorted(result.changed_workers):
        try:
            with transaction.atomic():
                if pk in result.changes:
                    Worker.objects.filter(pk=pk).update(**result.changes[pk])
                if upserts[pk]:
                    _upsert_labs(upserts[pk])
                if deletes[pk]:
                    Lab.objects.filter(pk__in=deletes[pk]).delete()
        except WRITE_ERRORS as error:
            if not refuses_a_value(error):
                raise
            refused[pk] = _refusal(error)
            log.warning("worker %s: the database refused its data: %s", pk, error)
    for pk, message in refused.items():
        try:
            with transaction.atomic():
                Worker.objects.filter(pk=pk).update(
                    last_error=message, consecutive_failures=F("consecutive_failures") + 1
                )
        except REFUSED_VALUE_ERRORS:
            log.exception("worker %s: could not record the refusal", pk)
    return refused


def _finish(
    run: CollectionRun,
    workers: list[Worker],
    result: CycleResult,
    now: datetime,
    refused: dict[int, str],
    close: Callable[[CollectionRun, Tally], None],
) -> None:
    """Stamp the workers polled, add their history samples, log the changes and close the run.
    Refused workers get no sample (their in-memory state is what the database refused)."""
    if result.polled:
        Worker.objects.filter(pk__in=result.polled).update(last_polled_at=now)
        polled = set(result.polled) - set(refused)
        samples = (Sample.of(worker, now) for worker in workers if worker.pk in polled)
        if refused:
            try:
                with transaction.atomic():
                    Sample.objects.bulk_create(samples, batch_size=BATCH_SIZE)
            except REFUSED_VALUE_ERRORS:
                log.exception("run %s: history samples refused, none kept this cycle", run.pk)
        else:
            Sample.objects.bulk_create(samples, batch_size=BATCH_SIZE)
    labs_read = [pk for pk in result.labs_read if pk not in refused]
    if labs_read:
        Worker.objects.filter(pk__in=labs_read).update(labs_polled_at=now)
    # The progress line: finished; with "samples" when the charts have new points.
    sampled = bool(result.polled) and set(result.polled) - set(refused)
    record_changes(
        [(None, ChangeKind.FLEET, ["run", "samples"] if sampled else ["run"])]
        + [
            (pk, ChangeKind.UPDATED, _logged_fields(result, pk, refused))
            for pk in sorted(result.changed_workers | set(refused))
        ]
    )
    errors = {**result.errors, **{str(pk): message for pk, message in refused.items()}}
    close(run, Tally(len(workers), len(result.changed_workers - set(refused)), errors))


def _refusal(error: Exception) -> str:
    """The database's message (its first line), clean enough to be stored itself."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    message = text(f"database refused this worker's data: {first}", "", Notes())
    return message[:REFUSAL_MAX]


def _logged_fields(result: CycleResult, pk: int, refused: dict[int, str]) -> list[str]:
    if pk in refused:
        return ["last_error", "consecutive_failures"]
    fields = list(result.changes.get(pk, {}))
    if pk in result.labs_changed:
        fields.append("labs")
    return fields
