import importlib
import logging
from datetime import datetime, timedelta

import pytest
from django.apps import apps
from django.db import OperationalError, connection
from django.utils import timezone

from fleet.collection.collect import collect
from fleet.models import CollectionRun, RunScope, RunStatus, RunTrigger
from fleet.web.health import fleet_health


def _run(age: timedelta, now: datetime | None = None, **fields) -> CollectionRun:
    finished = (now or timezone.now()) - age
    return CollectionRun.objects.create(
        status=RunStatus.SUCCEEDED, started_at=finished, finished_at=finished, **fields
    )


def test_it_is_healthy_after_a_recent_cycle(client, db):
    _run(timedelta(seconds=30))
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["last_cycle"]["overdue"] is False
    assert 29 <= body["last_cycle"]["age_seconds"] <= 60


def test_it_is_unhealthy_before_any_cycle(client, db):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["last_cycle"]["overdue"] is True


def test_it_is_unhealthy_when_the_last_success_is_too_old(client, db, settings):
    settings.POLL_INTERVAL_SECONDS = 300
    _run(timedelta(seconds=2 * 300 + 121))
    CollectionRun.objects.create(status=RunStatus.FAILED, finished_at=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["last_cycle"]["overdue"] is True


def test_the_limit_holds_at_its_exact_edge(db, settings):
    """Twice the interval plus two minutes is still healthy; one second more is overdue."""
    settings.POLL_INTERVAL_SECONDS = 300
    now = timezone.now()
    limit = timedelta(seconds=2 * 300 + 120)
    run = _run(limit, now)
    healthy, report = fleet_health(now)
    assert healthy and report["last_cycle"] == {
        "finished_at": run.finished_at.isoformat(),
        "age_seconds": 720,
        "overdue": False,
    }
    healthy, report = fleet_health(now + timedelta(seconds=1))
    assert not healthy and report["last_cycle"]["overdue"] is True
    assert report["last_cycle"]["age_seconds"] == 721


def test_one_workers_refresh_does_not_make_a_dead_scheduler_look_healthy(client, db, settings):
    settings.POLL_INTERVAL_SECONDS = 300
    _run(timedelta(hours=1))  # the last scheduled cycle
    _run(timedelta(seconds=5), trigger=RunTrigger.REFRESH, scope=RunScope.WORKERS, workers_total=1)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["last_cycle"]["age_seconds"] >= 3600


def test_collect_records_whether_a_cycle_covered_the_whole_fleet(fleet_workers):
    one = collect([fleet_workers[0].pk], trigger=RunTrigger.REFRESH)
    assert one.scope == RunScope.WORKERS
    # Two chosen workers are still not the fleet, however the run was triggered.
    two = collect([w.pk for w in fleet_workers[:2]], trigger=RunTrigger.COMMAND)
    assert two.scope == RunScope.WORKERS
    assert CollectionRun.objects.last_fleet_success() is None
    assert CollectionRun.objects.latest_fleet_wide() is None
    full = collect(trigger=RunTrigger.REFRESH)
    assert full.scope == RunScope.FLEET and full.status == RunStatus.SUCCEEDED
    assert CollectionRun.objects.last_fleet_success() == full
    assert CollectionRun.objects.latest_fleet_wide() == full


def test_the_migration_marks_past_single_worker_refreshes(db):
    migration = importlib.import_module("fleet.migrations.0006_run_scope")
    single = _run(timedelta(0), trigger=RunTrigger.REFRESH, workers_total=1)
    refresh_all = _run(timedelta(0), trigger=RunTrigger.REFRESH, workers_total=24)
    scheduled = _run(timedelta(0), workers_total=1)
    migration.mark_worker_runs(apps, None)
    scopes = dict(CollectionRun.objects.values_list("pk", "scope"))
    assert scopes == {
        single.pk: RunScope.WORKERS,
        refresh_all.pk: RunScope.FLEET,
        scheduled.pk: RunScope.FLEET,
    }


def test_it_is_unhealthy_when_the_database_is_unreachable(client, db, caplog):
    secret = 'connection to server at "db.internal" (10.0.0.5), user "fleet" refused'

    def unreachable(execute, sql, params, many, context):
        raise OperationalError(secret)

    with (
        connection.execute_wrapper(unreachable),
        caplog.at_level(logging.ERROR, "fleet.web.health"),
    ):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"database": "unreachable", "status": "unhealthy"}
    assert "db.internal" not in response.content.decode()
    assert secret in caplog.text  # the operator finds it in the log


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_it_only_answers_get(client, db, method):
    assert getattr(client, method)("/healthz").status_code == 405
