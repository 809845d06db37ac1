"""No run stays "running": a cycle that breaks, loses its database or is killed ends failed."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from fleet.collection import collect as collect_module
from fleet.collection.collect import collect
from fleet.models import Change, ChangeKind, CollectionRun, RunStatus, Worker
from tests.fleet_fixtures import terminate_backend_of


def fleet_changes() -> int:
    return Change.objects.filter(kind=ChangeKind.FLEET).count()  # "run" (+ "samples" at a finish)


def terminate_own_backend() -> None:
    """End this connection's PostgreSQL session from another connection, as a database restart
    or a dropped network would, and wait until it is gone."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]

    terminate_backend_of(pid)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("step", ["derive_cycle", "persist"])
def test_a_cycle_that_loses_its_database_connection_ends_failed(fleet_workers, monkeypatch, step):
    original = getattr(collect_module, step)

    def connection_lost_here(*args, **kwargs):
        terminate_own_backend()
        return original(*args, **kwargs)

    monkeypatch.setattr(collect_module, step, connection_lost_here)
    run = collect(kind="full")
    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert "Database error" in run.message and "terminating connection" in run.message
    assert CollectionRun.objects.get(pk=run.pk).status == RunStatus.FAILED
    assert not Worker.objects.filter(last_polled_at__isnull=False).exists()
    monkeypatch.undo()
    assert collect().status == RunStatus.SUCCEEDED  # the lock died with the lost session


def test_a_bug_in_a_cycle_fails_the_run_with_its_message(fleet_workers, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("no such worker")

    monkeypatch.setattr(collect_module, "derive_cycle", broken)
    changes = fleet_changes()
    run = collect()
    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert run.message == "KeyError: 'no such worker'"
    assert fleet_changes() == changes + 1  # the progress line hears of it


def test_an_interrupted_cycle_is_recorded_as_failed_and_the_interrupt_goes_on(
    fleet_workers, monkeypatch
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(collect_module, "derive_cycle", interrupted)
    with pytest.raises(KeyboardInterrupt):
        collect()
    run = CollectionRun.objects.get()
    assert run.status == RunStatus.FAILED and run.message == "interrupted (KeyboardInterrupt)"


def test_the_next_cycle_fails_runs_left_running_past_the_task_timeout(fleet_workers, settings):
    timeout = settings.Q_CLUSTER["timeout"]
    now = timezone.now()
    killed = CollectionRun.objects.create(started_at=now - timedelta(seconds=timeout + 1))
    # Just inside the timeout (a minute to spare, so a slow machine cannot cross it).
    alive = CollectionRun.objects.create(started_at=now - timedelta(seconds=timeout - 60))
    changes = fleet_changes()

    run = collect()

    killed.refresh_from_db()
    alive.refresh_from_db()
    assert killed.status == RunStatus.FAILED and killed.finished_at is None
    assert killed.message == f"did not finish: killed or timed out (task timeout {timeout} s)"
    assert alive.status == RunStatus.RUNNING and alive.message == ""
    assert run.status == RunStatus.SUCCEEDED
    assert fleet_changes() == changes + 2  # the sweep's and the new cycle's


def test_a_sweep_that_closes_nothing_writes_nothing(db):
    CollectionRun.objects.create()  # running, just started
    assert collect_module.close_stale_runs() == 0
    assert fleet_changes() == 0
