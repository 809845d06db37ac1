"""Large cycles in shards, collected by every cluster process that is free.

A fleet cycle over more than COLLECT_SHARD_SIZE workers is split into shards: the workers of
one region, at most COLLECT_SHARD_SIZE of them each. The process that runs the cycle (it holds
the fleet lock for the whole cycle) writes the shards, queues a django-q2 task per further
shard, and then claims and collects shards itself like any helper; a claim is one row lock
(`SKIP LOCKED`), so each shard is collected once, by whichever process gets there first. Each
shard observes, derives and persists on its own and adds its counts to the one CollectionRun.
The cycle's process then waits for the shards others took; one still running past
SHARD_TIMEOUT (its process was killed) is marked failed, its workers with it, and the others
stand. Without PostgreSQL (no row locks to claim with) the cycle's process collects them all.
"""

import logging
import time
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task

from fleet.collection.persist import Tally, persist
from fleet.collection.progress import ProgressReporter
from fleet.models import CollectionRun, CollectionShard, RunKind, RunStatus, ShardStatus, Worker
from fleet.models.changes import record_fleet_change

log = logging.getLogger(__name__)

SHARD_TASK = "fleet.tasks.collect_shards"
WAIT_SECONDS = 0.5


class ShardAbandoned(Exception):
    """The shard was given up on (marked failed) while it ran: its writes must not count."""


def shard_timeout() -> float:
    """How long a claimed shard may run before its process counts as dead: the AWS phase, the
    CML phase and a minute for the database."""
    return settings.AWS_DEADLINE_SECONDS + settings.COLLECT_CYCLE_DEADLINE_SECONDS + 60


def plan(workers: list[Worker], size: int) -> list[tuple[str, list[int]]]:
    """(region, worker ids) of each shard: per region, in chunks of at most `size`."""
    by_region: dict[str, list[int]] = {}
    for worker in workers:
        by_region.setdefault(worker.region, []).append(worker.pk)
    return [
        (region, pks[start : start + size])
        for region, pks in sorted(by_region.items())
        for start in range(0, len(pks), size)
    ]


def collect_in_shards(
    run: CollectionRun, workers: list[Worker], worker_deadline: float | None
) -> CollectionRun:
    """Run `run` (fleet lock held) as shards; return it finished."""
    shards = CollectionShard.objects.bulk_create(
        CollectionShard(run=run, number=number, region=region, worker_ids=pks)
        for number, (region, pks) in enumerate(plan(workers, settings.COLLECT_SHARD_SIZE), 1)
    )
    if connection.vendor == "postgresql" and len(shards) > 1:
        # In a transaction: q2's broker would otherwise close the connection, and with it
        # this session's fleet lock.
        with transaction.atomic():
            for _ in shards[1:]:
                async_task(SHARD_TASK, run.pk, task_name=f"shards of run {run.pk}")
    work_on(run.pk, worker_deadline)
    _wait_for_shards(run)
    return _close(run)


def work_on(run_pk: int, worker_deadline: float | None = None) -> int:
    """Claim and collect the run's pending shards until none is left; how many were done
    here. What the helper tasks run, and the cycle's own process too."""
    done = 0
    while (shard := _claim(run_pk)) is not None:
        collect_shard(shard, worker_deadline)
        done += 1
    return done


def _claim(run_pk: int) -> CollectionShard | None:
    with transaction.atomic():
        shard = (
            # Lock the shard row only: locking the joined run row too would make every other
            # claimer skip every shard while one claim is in flight, and stop as if all were taken.
            CollectionShard.objects.select_for_update(skip_locked=True, of=("self",))
            # A run that failed as a whole (its cycle's process hit a database error) is over:
            # its shards are not taken any more.
            .filter(run_id=run_pk, status=ShardStatus.PENDING, run__status=RunStatus.RUNNING)
            .order_by("number")
            .first()
        )
        if shard is None:
            return None
        shard.status, shard.claimed_at = ShardStatus.RUNNING, timezone.now()
        shard.save(update_fields=["status", "claimed_at"])
    return shard


def collect_shard(shard: CollectionShard, worker_deadline: float | None = None) -> None:
    """Observe, derive and persist one shard; its counts go to the run. A failure fails the
    shard (and counts its workers as failed), never the cycle."""
    from fleet.collection.collect import derive_cycle, observe  # collect dispatches here

    run = shard.run
    workers = list(Worker.objects.filter(pk__in=shard.worker_ids).order_by("pk"))
    try:
        with ProgressReporter(run) as progress:
            seen, aws_calls, notes = observe(
                workers,
                read_labs=run.kind == RunKind.FULL,
                deadline=worker_deadline,
                on_worker_done=progress.worker_done,
            )
        result = derive_cycle(workers, seen)
        add = partial(_add_shard, shard, aws_calls, notes, progress.published)
        persist(run, workers, result, timezone.now(), close=add)
    except ShardAbandoned:
        log.warning("%s was given up on while it ran; its writes were rolled back", shard)
    except Exception as error:
        log.exception("%s failed", shard)
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        fail_shard(shard.pk, f"{type(error).__name__}: {error}")


def _add_shard(
    shard: CollectionShard,
    aws_calls: int,
    notes: list[str],
    published: int,
    run: CollectionRun,
    tally: Tally,
) -> None:
    """persist's `close` for a shard, in its transaction: the shard succeeded (unless it was
    given up on meanwhile) and the run adds up its counts."""
    finished = CollectionShard.objects.filter(pk=shard.pk, status=ShardStatus.RUNNING).update(
        status=ShardStatus.SUCCEEDED, finished_at=timezone.now()
    )
    if not finished:
        raise ShardAbandoned(shard.pk)
    total = CollectionRun.objects.select_for_update().get(pk=run.pk)
    total.workers_seen += tally.seen
    total.workers_changed += tally.changed
    total.workers_failed += len(tally.errors)
    total.errors = {**total.errors, **tally.errors}
    total.aws_calls += aws_calls
    total.message = "; ".join(dict.fromkeys(filter(None, [total.message, *notes])))
    total.workers_done = F("workers_done") + (tally.seen - published)
    total.save(
        update_fields=[
            "workers_seen",
            "workers_changed",
            "workers_failed",
            "errors",
            "aws_calls",
            "message",
            "workers_done",
        ]
    )


def fail_shard(shard_pk: int, message: str) -> bool:
    """Mark a pending or running shard failed and count its workers as failed, once."""
    with transaction.atomic():
        shard = (
            CollectionShard.objects.select_for_update()
            .filter(pk=shard_pk, status__in=[ShardStatus.PENDING, ShardStatus.RUNNING])
            .first()
        )
        if shard is None:
            return False
        shard.status, shard.finished_at, shard.message = ShardStatus.FAILED, timezone.now(), message
        shard.save(update_fields=["status", "finished_at", "message"])
        total = CollectionRun.objects.select_for_update().get(pk=shard.run_id)
        error = f"shard {shard.number} ({shard.region}) failed: {message}"[:500]
        total.errors = {**total.errors, **{str(pk): error for pk in shard.worker_ids}}
        total.workers_failed += len(shard.worker_ids)
        total.save(update_fields=["errors", "workers_failed"])
        record_fleet_change()
    return True


def _wait_for_shards(run: CollectionRun) -> None:
    """Until no shard of the run is pending or running; a shard claimed longer than
    shard_timeout() ago is failed (its process died without a word)."""
    unfinished = CollectionShard.objects.filter(
        run=run, status__in=[ShardStatus.PENDING, ShardStatus.RUNNING]
    )
    while unfinished.exists():
        stale = timezone.now() - timedelta(seconds=shard_timeout())
        for pk in unfinished.filter(claimed_at__lt=stale).values_list("pk", flat=True):
            fail_shard(pk, f"did not finish within {shard_timeout():g} s: its process died")
        time.sleep(WAIT_SECONDS)


def _close(run: CollectionRun) -> CollectionRun:
    """The run ends when its shards have: succeeded unless every shard failed, each failed
    shard named in its message."""
    shards = list(CollectionShard.objects.filter(run=run))
    failed = [shard for shard in shards if shard.status == ShardStatus.FAILED]
    with transaction.atomic():
        run = CollectionRun.objects.select_for_update().get(pk=run.pk)
        run.status = RunStatus.FAILED if len(failed) == len(shards) else RunStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.workers_done = run.workers_total
        said = [
            f"shard {s.number} of {len(shards)} ({s.region}, {len(s.worker_ids)} workers) "
            f"failed: {s.message}"
            for s in failed
        ]
        run.message = "; ".join(filter(None, [run.message, *said]))[:2000]
        run.save()
        record_fleet_change()
    return run
