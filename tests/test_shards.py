"""Large cycles in shards: per region, in chunks of COLLECT_SHARD_SIZE, claimed once each by
whichever process is free, added up in one run under one fleet lock; a dead shard fails alone."""

import threading

import pytest
from django.db import connection

from fleet.collection import shards as live_shards
from fleet.collection.collect import collect
from fleet.collection.shards import fail_shard, plan, work_on
from fleet.models import (
    CollectionRun,
    CollectionShard,
    RunKind,
    RunStatus,
    ShardStatus,
    Worker,
)
from tests.fleet_fixtures import running


def test_shards_are_per_region_and_at_most_the_shard_size():
    workers = [Worker(pk=n, region="us-east-1" if n % 3 else "eu-west-1") for n in range(1, 11)]
    assert plan(workers, 3) == [
        ("eu-west-1", [3, 6, 9]),
        ("us-east-1", [1, 2, 4]),
        ("us-east-1", [5, 7, 8]),
        ("us-east-1", [10]),
    ]


@pytest.fixture
def small_shards(settings):
    settings.COLLECT_SHARD_SIZE = 2  # the simulated fleet's 6 workers in 2 regions: 4 shards


def test_a_sharded_cycle_is_one_run_that_adds_up_its_shards(
    fleet_workers, fleet_settings, small_shards
):
    run = collect(kind=RunKind.FULL)
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert CollectionRun.objects.count() == 1
    shards = list(run.shards.all())
    assert len(shards) == 4 and {s.status for s in shards} == {ShardStatus.SUCCEEDED}
    assert sorted(pk for s in shards for pk in s.worker_ids) == sorted(w.pk for w in fleet_workers)
    assert run.workers_seen == run.workers_total == run.workers_done == len(fleet_workers)
    assert run.workers_changed == len(fleet_workers) and run.workers_failed == 0
    assert run.aws_calls >= 4  # each shard asked AWS about its own region's workers
    for worker in Worker.objects.filter(
        pk__in=[w.pk for w in running(fleet_settings, fleet_workers)]
    ):
        assert worker.service_status == "available" and worker.labs_polled_at is not None


def test_a_fleet_that_fits_one_shard_is_collected_whole(fleet_workers, fleet_settings):
    run = collect()
    assert run.status == RunStatus.SUCCEEDED and not run.shards.exists()


def test_a_shard_that_fails_fails_alone(fleet_workers, fleet_settings, small_shards, monkeypatch):
    real_observe = live_shards_observe()

    def observe(workers, **kwargs):
        if any(w.region == "eu-west-1" for w in workers) and len(workers) == 2:
            raise RuntimeError("this shard's process hit a bug")
        return real_observe(workers, **kwargs)

    monkeypatch.setattr("fleet.collection.collect.observe", observe)
    run = collect(kind=RunKind.FULL)
    assert run.status == RunStatus.SUCCEEDED
    (failed,) = run.shards.filter(status=ShardStatus.FAILED)
    assert run.shards.filter(status=ShardStatus.SUCCEEDED).count() == 3
    assert "this shard's process hit a bug" in failed.message
    assert f"shard {failed.number} of 4 (eu-west-1, 2 workers) failed" in run.message
    assert run.workers_failed == 2 and run.workers_seen == len(fleet_workers) - 2
    for pk in failed.worker_ids:
        assert "this shard's process hit a bug" in run.errors[str(pk)]
        assert Worker.objects.get(pk=pk).last_polled_at is None  # not written
    others = [pk for s in run.shards.exclude(pk=failed.pk) for pk in s.worker_ids]
    assert all(w.last_polled_at for w in Worker.objects.filter(pk__in=others))


def live_shards_observe():
    from fleet.collection.collect import observe

    return observe


@pytest.mark.django_db(transaction=True)
def test_a_shard_whose_process_died_is_failed_after_its_timeout_and_the_rest_stand(
    fleet_workers, fleet_settings, small_shards, monkeypatch
):
    """A helper claimed a shard and was killed: nothing will ever finish it. The cycle's
    process gives up on it after the shard timeout; the other shards' data stand."""
    real_collect_shard = live_shards.collect_shard
    vanished = []

    def collect_shard(shard, worker_deadline=None):
        if shard.number == 2:
            vanished.append(shard.pk)  # claimed (running), and then nothing: the process died
            return
        real_collect_shard(shard, worker_deadline)

    monkeypatch.setattr(live_shards, "collect_shard", collect_shard)
    monkeypatch.setattr(live_shards, "shard_timeout", lambda: 1.0)
    run = collect()
    dead = CollectionShard.objects.get(pk=vanished[0])
    assert dead.status == ShardStatus.FAILED and "its process died" in dead.message
    assert run.status == RunStatus.SUCCEEDED
    assert run.shards.filter(status=ShardStatus.SUCCEEDED).count() == 3
    assert run.workers_failed == len(dead.worker_ids)
    assert run.workers_seen == len(fleet_workers) - len(dead.worker_ids)
    assert run.workers_done == run.workers_total


@pytest.mark.django_db(transaction=True)
def test_a_shard_given_up_on_while_it_ran_writes_nothing(
    fleet_workers, fleet_settings, small_shards, monkeypatch
):
    """The slow helper finishes after all: its shard was failed meanwhile (by the cycle's
    process, past the timeout), so its writes are rolled back rather than counted twice."""
    real_observe = live_shards_observe()

    def observe(workers, **kwargs):
        seen = real_observe(workers, **kwargs)
        shard = CollectionShard.objects.get(number=1)
        if {w.pk for w in workers} == set(shard.worker_ids):
            fail_shard(shard.pk, "did not finish in time")  # given up on while it observed
        return seen

    monkeypatch.setattr("fleet.collection.collect.observe", observe)
    run = collect()
    first = run.shards.get(number=1)
    assert first.status == ShardStatus.FAILED and first.message == "did not finish in time"
    assert run.workers_failed == len(first.worker_ids)
    assert run.workers_seen == len(fleet_workers) - len(first.worker_ids)
    assert all(w.last_polled_at is None for w in Worker.objects.filter(pk__in=first.worker_ids))


@pytest.mark.django_db(transaction=True)
def test_the_fleet_lock_covers_the_whole_sharded_cycle(
    fleet_workers, fleet_settings, small_shards, settings, monkeypatch
):
    settings.COLLECT_LOCK_WAIT_SECONDS = 0
    real_collect_shard = live_shards.collect_shard
    meanwhile = []

    def collect_shard(shard, worker_deadline=None):
        if shard.number == 3:  # well into the cycle: another process's cycle falls due

            def other_process():
                meanwhile.append(collect())
                connection.close()

            thread = threading.Thread(target=other_process)
            thread.start()
            thread.join()
        real_collect_shard(shard, worker_deadline)

    monkeypatch.setattr(live_shards, "collect_shard", collect_shard)
    run = collect()
    assert run.status == RunStatus.SUCCEEDED
    assert [m.status for m in meanwhile] == [RunStatus.SKIPPED]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_each_shard_is_claimed_once_however_many_processes_ask(fleet_workers, small_shards):
    run = CollectionRun.objects.create(workers_total=6)
    CollectionShard.objects.bulk_create(
        CollectionShard(run=run, number=n, region="us-east-1", worker_ids=[]) for n in range(1, 9)
    )
    claimed: list[int] = []
    lock = threading.Lock()

    def helper():
        try:
            while (shard := live_shards._claim(run.pk)) is not None:
                with lock:
                    claimed.append(shard.number)
        finally:
            connection.close()

    helpers = [threading.Thread(target=helper) for _ in range(4)]
    for thread in helpers:
        thread.start()
    for thread in helpers:
        thread.join()
    assert sorted(claimed) == list(range(1, 9))  # every shard once, none twice


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_the_cycle_queues_a_helper_task_per_further_shard(
    fleet_workers, fleet_settings, small_shards
):
    from django_q.models import OrmQ

    run = collect()
    queued = [entry for entry in OrmQ.objects.all() if entry.func() == live_shards.SHARD_TASK]
    assert len(queued) == 3  # 4 shards: the cycle's own process takes one at least
    assert {entry.task["args"] for entry in queued} == {(run.pk,)}
    # A helper that starts after the cycle's process took every shard has nothing to do.
    assert work_on(run.pk) == 0


@pytest.mark.django_db(transaction=True)
def test_the_shards_of_a_run_that_failed_as_a_whole_are_not_taken(fleet_workers, small_shards):
    run = CollectionRun.objects.create(workers_total=6, status=RunStatus.FAILED)
    CollectionShard.objects.create(run=run, number=1, region="us-east-1", worker_ids=[])
    assert work_on(run.pk) == 0
    assert run.shards.get().status == ShardStatus.PENDING


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_in_flight_hides_only_its_own_shard(fleet_workers, small_shards, monkeypatch):
    """While one process is between reading and writing its claim, another still finds the
    next shard: the claim locks the shard's row, not the run's (which every shard joins)."""
    run = CollectionRun.objects.create(workers_total=6)
    CollectionShard.objects.bulk_create(
        CollectionShard(run=run, number=n, region="us-east-1", worker_ids=[]) for n in (1, 2)
    )
    holding, release = threading.Event(), threading.Event()
    original_save = CollectionShard.save

    def slow_save(shard, *args, **kwargs):
        if threading.current_thread().name == "slow-claimer":
            holding.set()
            release.wait(10)
        return original_save(shard, *args, **kwargs)

    monkeypatch.setattr(CollectionShard, "save", slow_save)
    first = []

    def slow_claimer():
        try:
            first.append(live_shards._claim(run.pk))
        finally:
            connection.close()

    thread = threading.Thread(target=slow_claimer, name="slow-claimer")
    thread.start()
    assert holding.wait(10)
    try:
        second = live_shards._claim(run.pk)
    finally:
        release.set()
        thread.join(10)
    assert (first[0].number, second.number if second else None) == (1, 2)
