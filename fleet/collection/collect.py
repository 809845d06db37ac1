"""The one collection path, used by the schedule, the Refresh buttons and `manage.py`:

observe (AWS per region in threads, CML per worker concurrently) → derive (pure) → persist
(one transaction, constant queries).
"""

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, connection, transaction
from django.utils import timezone

from fleet.collection.derive import (
    WorkerObservation,
    cml_endpoint,
    derive_changes,
    derive_lab_changes,
)
from fleet.collection.fit import fit_observation
from fleet.collection.locks import exclusive
from fleet.collection.persist import CycleResult, persist
from fleet.collection.progress import ProgressReporter
from fleet.collection.sources.aws import AwsReader
from fleet.collection.sources.cml import CMLTarget, observe_cml
from fleet.collection.token_cache import load_tokens, save_tokens
from fleet.models import (
    CollectionRun,
    Lab,
    LicenseState,
    RunKind,
    RunScope,
    RunStatus,
    RunTrigger,
    Worker,
    WorkerStatus,
)
from fleet.models.changes import record_fleet_change

log = logging.getLogger(__name__)

FLEET_LOCK = "fleet-collection"


def aws_reader() -> AwsReader:
    """The reader for the current settings (AWS_REGIONS, AWS_ENDPOINT_URL, AWS_DEADLINE_SECONDS)."""
    return _aws_reader(
        tuple(settings.AWS_REGIONS), settings.AWS_ENDPOINT_URL, settings.AWS_DEADLINE_SECONDS
    )


@functools.cache
def _aws_reader(regions: tuple[str, ...], endpoint_url: str | None, deadline: int) -> AwsReader:
    """One reader (and so one boto3 client per region) per process, reused by every cycle."""
    return AwsReader(list(regions), endpoint_url, deadline=deadline)


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


def observe(
    workers: list[Worker],
    *,
    read_labs: bool,
    deadline: float | None = None,
    on_worker_done: Callable[[], None] | None = None,
) -> tuple[dict[int, WorkerObservation], int, list[str]]:
    """Ask AWS about every worker (regions concurrently), then CML about the running ones.
    Returns the observations, the AWS API calls made, and region-wide notes (CloudWatch down)."""
    ids_by_region: dict[str, list[str]] = {}
    for worker in workers:
        ids_by_region.setdefault(worker.region, []).append(worker.instance_id)
    reader = aws_reader()
    regions = reader.observe(ids_by_region) if ids_by_region else {}
    notes = [
        f"CloudWatch {name}: {region.metrics_error}"
        for name, region in sorted(regions.items())
        if region.metrics_error
    ]

    aws_seen: dict[int, WorkerObservation] = {}
    targets: list[CMLTarget] = []
    for worker in workers:
        region = regions[worker.region]
        if region.error:
            aws_seen[worker.pk] = WorkerObservation(
                aws_error=f"AWS {worker.region}: {region.error}"
            )
            continue
        instance = region.instances[worker.instance_id]
        aws_seen[worker.pk] = WorkerObservation(aws=instance)
        if instance.found and instance.state == WorkerStatus.RUNNING:
            endpoint = cml_endpoint(settings.CML_ENDPOINT_TEMPLATE, worker, instance)
            if endpoint:
                targets.append(CMLTarget(key=worker.pk, endpoint=endpoint))

    if on_worker_done:  # the workers CML will not be asked about are done already
        for _ in range(len(workers) - len(targets)):
            on_worker_done()
    # The licence changes rarely: full cycles read it, and any cycle where a worker's is unknown.
    asked = {target.key for target in targets}
    read_licence = read_labs or any(
        w.license_state == LicenseState.UNKNOWN for w in workers if w.pk in asked
    )
    cml_seen = (
        _observe_cml(targets, read_labs, read_licence, deadline, on_worker_done) if targets else {}
    )
    seen = {
        pk: WorkerObservation(aws=obs.aws, aws_error=obs.aws_error, cml=cml_seen.get(pk))
        for pk, obs in aws_seen.items()
    }
    return seen, sum(region.api_calls for region in regions.values()), notes


def _observe_cml(
    targets: list[CMLTarget],
    read_labs: bool,
    read_licence: bool,
    deadline: float | None,
    on_worker_done: Callable[[], None] | None,
) -> dict:
    return run_cml_reader(
        observe_cml,
        targets,
        read_labs=read_labs,
        read_licence=read_licence,
        worker_deadline=deadline or settings.CML_WORKER_DEADLINE_SECONDS,
        on_worker_done=on_worker_done,
    )


def run_cml_reader(reader: Callable[..., Any], targets: list[CMLTarget], **options: Any) -> dict:
    """Run a CML reader of `sources.cml` (observe_cml, observe_telemetry) over `targets` with
    the configured account, TLS and bounds, sharing the processes' cached tokens."""
    tokens = load_tokens()
    before = dict(tokens)
    configured = {
        "username": settings.CML_USERNAME,
        "password": settings.CML_PASSWORD,
        "verify_tls": settings.CML_VERIFY_TLS,
        "ca_bundle": settings.CML_CA_BUNDLE,
        "concurrency": settings.COLLECT_CONCURRENCY,
        "request_timeout": settings.CML_REQUEST_TIMEOUT_SECONDS,
        "worker_deadline": settings.CML_WORKER_DEADLINE_SECONDS,
        "cycle_deadline": settings.COLLECT_CYCLE_DEADLINE_SECONDS,
        "max_response_bytes": settings.CML_MAX_RESPONSE_BYTES,
    }
    seen = asyncio.run(reader(targets, **{**configured, **options}, tokens=tokens))
    if tokens != before:
        save_tokens(tokens)
    return seen


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
