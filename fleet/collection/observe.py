"""The observe stage of a cycle: AWS about every worker and CML about the running ones, at once.

AWS answers by region in threads while the event loop already reads CML from the workers the
last cycle saw running, at the address it saw (most of a fleet, most of the time). Once AWS
has answered, a worker it confirms at the same address keeps that read; one that started, or
whose address changed, is read now; one no longer running, or whose region failed, has its
read cancelled and discarded. A cycle then takes about the longer of the two, not their sum.
"""

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.conf import settings

from fleet.collection.derive import WorkerObservation, cml_endpoint
from fleet.collection.sources.aws import AwsReader, RegionObservation
from fleet.collection.sources.cml import (
    CMLObservation,
    CMLReader,
    CMLTarget,
    cml_reader,
    gather_reads,
)
from fleet.collection.token_cache import load_tokens, save_tokens
from fleet.models import LicenseState, Worker, WorkerStatus

T = TypeVar("T")


def aws_reader() -> AwsReader:
    """The reader for the current settings (AWS_REGIONS, AWS_ENDPOINT_URL, AWS_DEADLINE_SECONDS)."""
    return _aws_reader(
        tuple(settings.AWS_REGIONS), settings.AWS_ENDPOINT_URL, settings.AWS_DEADLINE_SECONDS
    )


@functools.cache
def _aws_reader(regions: tuple[str, ...], endpoint_url: str | None, deadline: int) -> AwsReader:
    """One reader (and so one boto3 client per region) per process, reused by every cycle."""
    return AwsReader(list(regions), endpoint_url, deadline=deadline)


def observe(
    workers: list[Worker],
    *,
    read_labs: bool,
    deadline: float | None = None,
    on_worker_done: Callable[[], None] | None = None,
) -> tuple[dict[int, WorkerObservation], int, list[str]]:
    """Observe every worker: AWS (regions concurrently) and CML (the running workers).
    Returns the observations, the AWS API calls made, and region-wide notes (CloudWatch down).
    `deadline` replaces CML_WORKER_DEADLINE_SECONDS; `on_worker_done` is called as each worker
    is done (progress)."""
    ids_by_region: dict[str, list[str]] = {}
    for worker in workers:
        ids_by_region.setdefault(worker.region, []).append(worker.instance_id)
    if not ids_by_region:
        return {}, 0, []

    async def both(options: dict[str, Any]) -> tuple[dict, dict]:
        cml = cml_reader(read_labs=read_labs, **options)
        cycle = _Observation(workers, cml, read_labs, on_worker_done or (lambda: None))
        return await cycle.run(ids_by_region)

    regions, seen = _with_cml(both, worker_deadline=deadline)
    notes = [
        f"CloudWatch {name}: {region.metrics_error}"
        for name, region in sorted(regions.items())
        if region.metrics_error
    ]
    return seen, sum(region.api_calls for region in regions.values()), notes


class _Observation:
    """One cycle's observation of `workers`: early CML reads, AWS, then the rest of CML."""

    def __init__(
        self,
        workers: list[Worker],
        cml: CMLReader[CMLObservation],
        read_labs: bool,
        on_worker_done: Callable[[], None],
    ) -> None:
        self.workers = workers
        self.cml = cml
        self.read_labs = read_labs
        self.on_worker_done = on_worker_done

    def target(self, worker: Worker, endpoint: str) -> CMLTarget:
        # The licence changes rarely: full cycles read it, and any cycle where it is unknown.
        licence = self.read_labs or worker.license_state == LicenseState.UNKNOWN
        return CMLTarget(worker.pk, endpoint, read_licence=licence)

    async def run(
        self, ids_by_region: dict[str, list[str]]
    ) -> tuple[dict[str, RegionObservation], dict[int, WorkerObservation]]:
        early = {
            worker.pk: (
                worker.cml_endpoint,
                self.cml.start(self.target(worker, worker.cml_endpoint)),
            )
            for worker in self.workers
            if worker.status == WorkerStatus.RUNNING and worker.cml_endpoint
        }
        try:
            regions = await asyncio.to_thread(aws_reader().observe, ids_by_region)
        except BaseException:
            await _cancel([task for _, task in early.values()])
            raise
        seen: dict[int, WorkerObservation] = {}
        reads: dict[int, asyncio.Task[CMLObservation]] = {}
        moved: list[asyncio.Task] = []
        for worker in self.workers:
            region = regions[worker.region]
            if region.error:
                seen[worker.pk] = WorkerObservation(
                    aws_error=f"AWS {worker.region}: {region.error}"
                )
                continue
            instance = region.instances[worker.instance_id]
            seen[worker.pk] = WorkerObservation(aws=instance)
            if instance.found and instance.state == WorkerStatus.RUNNING:
                endpoint = cml_endpoint(settings.CML_ENDPOINT_TEMPLATE, worker, instance)
                if endpoint:
                    address, task = early.pop(worker.pk, ("", None))
                    if task is not None and address != endpoint:  # read where AWS says
                        moved.append(task)
                        task = None
                    if task is None:
                        task = self.cml.start(self.target(worker, endpoint))
                    reads[worker.pk] = task
        await _cancel(moved + [task for _, task in early.values()])  # moved, or not running
        for _ in range(len(self.workers) - len(reads)):  # done already: CML is not asked
            self.on_worker_done()
        for pk, cml in (await gather_reads(reads, self.on_worker_done)).items():
            seen[pk] = WorkerObservation(aws=seen[pk].aws, cml=cml)
        return regions, seen


async def _cancel(tasks: list[asyncio.Task]) -> None:
    """Cancel reads no longer wanted, and wait until they have let go of their connections."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def run_cml_reader(
    reader: Callable[..., Awaitable[T]], targets: list[CMLTarget], **options: Any
) -> T:
    """Run a CML reader of `sources.cml` (observe_cml, observe_telemetry) over `targets` with
    the configured account, TLS and bounds, sharing the processes' cached tokens."""

    async def read(configured: dict[str, Any]) -> T:
        return await reader(targets, **configured)

    return _with_cml(read, **options)


def _with_cml(main: Callable[[dict[str, Any]], Awaitable[T]], **options: Any) -> T:
    """Run `main(options)` in a new event loop, `options` being the configured CML account,
    TLS and bounds (overridden by `options` that are not None) and the cached tokens; tokens
    that changed are saved for every process."""
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
        **{name: value for name, value in options.items() if value is not None},
        "tokens": tokens,
    }
    result = asyncio.run(main(configured))
    if tokens != before:
        save_tokens(tokens)
    return result
