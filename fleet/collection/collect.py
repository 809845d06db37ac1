"""The one collection path, used by the schedule, the Refresh buttons and `manage.py`:

observe (AWS per region in threads and CML per worker concurrently, side by side) → derive
(pure) → persist (one transaction, constant queries).
"""

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import DatabaseError, InterfaceError, connection, transaction
from django.utils import timezone

from fleet.collection.derive import WorkerObservation, derive_changes, derive_lab_changes
from fleet.collection.fit import fit_observation
from fleet.collection.locks import exclusive
from fleet.collection.observe import observe
from fleet.collection.persist import CycleResult, persist
from fleet.collection.progress import ProgressReporter
from fleet.models import (
    CollectionRun,
    Lab,
    RunKind,
    RunScope,
    RunStatus,
    RunTrigger,
    Worker,
)
from fleet.models.changes import record_fleet_change

log = logging.getLogger(__name__)

FLEET_LOCK = "fleet-collection"


def collect(
    worker_ids: Iterable[int] | None = None,
    *,
    kind: str = RunKind.METRICS,
    trigger: str = RunTrigger.SCHEDULE,
    worker_deadline: float | None = None,
) -> CollectionRun:
    """Collect every worker (or the given ones) and return the finished run.

    A full-fleet collection is skipped, and recorded as skipped, while another one runs anywhere.
    One worker's failure is recorded on that worker; a database error (a lost connection too)
    or any other exception fails the run and writes nothing else. Runs that an earlier process
    left "running" (killed, timed out) are closed as failed first.
    """
    close_stale_runs()
    if worker_ids is not None:
        return _collect(list(worker_ids), kind, trigger, worker_deadline)
    # A cycle due while another runs (the labs and metrics schedules often fall due together)
    # waits a little for it; a cycle still running after that is overlapping: skip this one.
    with exclusive(FLEET_LOCK, wait=settings.COLLECT_LOCK_WAIT_SECONDS) as held:
        if not held:
            now = timezone.now()
            return CollectionRun.objects.create(
                kind=kind,
                trigger=trigger,
                status=RunStatus.SKIPPED,
                started_at=now,
                finished_at=now,
                message="another collection was still running",
            )
        return _collect(None, kind, trigger, worker_deadline)


def _collect(
    worker_ids: list[int] | None, kind: str, trigger: str, worker_deadline: float | None
) -> CollectionRun:
    workers = (
        Worker.objects.all() if worker_ids is None else Worker.objects.filter(pk__in=worker_ids)
    )
    workers = list(workers.order_by("pk"))
    scope = RunScope.FLEET if worker_ids is None else RunScope.WORKERS
    run = CollectionRun.objects.create(
        kind=kind, trigger=trigger, scope=scope, workers_total=len(workers)
    )
    if scope == RunScope.FLEET and len(workers) > settings.COLLECT_SHARD_SIZE:
        from fleet.collection.shards import collect_in_shards  # it uses observe and derive here

        return _guarded(run, partial(collect_in_shards, run, workers, worker_deadline))
    return _guarded(run, partial(_collect_whole, run, workers, kind, worker_deadline))


def _collect_whole(
    run: CollectionRun, workers: list[Worker], kind: str, worker_deadline: float | None
) -> CollectionRun:
    """The cycle in one piece: one observation, one derive, one transaction."""
    with ProgressReporter(run) as progress:
        seen, aws_calls, notes = observe(
            workers,
            read_labs=kind == RunKind.FULL,
            deadline=worker_deadline,
            on_worker_done=progress.worker_done,
        )
    run.aws_calls = aws_calls
    run.message = "; ".join(notes)
    result = derive_cycle(workers, seen)
    persist(run, workers, result, timezone.now())
    return run


def _guarded(run: CollectionRun, cycle: Callable[[], CollectionRun]) -> CollectionRun:
    """Run the cycle; whatever goes wrong, the run ends failed and says why."""
    try:
        return cycle()
    except (DatabaseError, InterfaceError) as error:
        log.exception("collection run %s failed", run.pk)
        return _fail(run, f"Database error: {error}")
    except Exception as error:  # a bug: the run must still end, and say why
        log.exception("collection run %s failed", run.pk)
        return _fail(run, f"{type(error).__name__}: {error}")
    except BaseException as error:  # Ctrl-C, SystemExit: record it, then let it through
        _fail(run, f"interrupted ({type(error).__name__})")
        raise


def _fail(run: CollectionRun, message: str) -> CollectionRun:
    """Close the run as failed. A lost connection is closed first so that this write goes out
    on a fresh one (the run would otherwise stay "running")."""
    if not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()
    with transaction.atomic():
        CollectionRun.objects.filter(pk=run.pk).update(
            status=RunStatus.FAILED, finished_at=timezone.now(), message=message[:2000]
        )
        record_fleet_change()
    run.refresh_from_db()
    return run


def close_stale_runs() -> int:
    """Fail the runs still "running" after django-q2's task timeout: q2 killed their process
    (or it died, or lost its database) before it could say so. One UPDATE; the live pages hear
    of it when any were closed."""
    timeout = settings.Q_CLUSTER["timeout"]
    message = f"did not finish: killed or timed out (task timeout {timeout} s)"
    with transaction.atomic():
        closed = CollectionRun.objects.close_stale(timedelta(seconds=timeout), message)
        if closed:
            record_fleet_change()
    return closed


def derive_cycle(workers: list[Worker], seen: dict[int, WorkerObservation]) -> CycleResult:
    """Fit every observation to the columns, then run derive over every worker and its labs
    (one query loads the stored labs)."""
    result = CycleResult()
    seen = {pk: fit_observation(observation) for pk, observation in seen.items()}
    for worker in workers:
        observation = seen[worker.pk]
        changes = derive_changes(worker, observation, settings.CML_ENDPOINT_TEMPLATE)
        if changes:
            result.changes[worker.pk] = changes
        error = changes.get("last_error", worker.last_error)
        if error:
            result.errors[str(worker.pk)] = error
        result.polled.append(worker.pk)
        if observation.cml is not None and observation.cml.labs is not None:
            result.labs_read.append(worker.pk)

    stored: dict[int, list[Lab]] = {pk: [] for pk in result.labs_read}
    if result.labs_read:
        for lab in Lab.objects.filter(worker_id__in=result.labs_read):
            stored[lab.worker_id].append(lab)
    by_pk = {worker.pk: worker for worker in workers}
    for pk in result.labs_read:
        upserts, deletes = derive_lab_changes(by_pk[pk], stored[pk], seen[pk].cml.labs)
        if upserts or deletes:
            result.lab_upserts.extend(upserts)
            result.lab_deletes.extend(deletes)
            result.labs_changed.add(pk)
    return result
