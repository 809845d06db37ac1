from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from fleet.models import CollectionRun, RunStatus


def _run(age: timedelta) -> CollectionRun:
    finished = timezone.now() - age
    return CollectionRun.objects.create(
        status=RunStatus.SUCCEEDED, started_at=finished, finished_at=finished
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


def test_it_is_unhealthy_when_the_database_is_unreachable(client, db, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(CollectionRun.objects, "filter", unreachable)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_it_only_answers_get(client, db, method):
    assert getattr(client, method)("/healthz").status_code == 405
