"""/metrics: the fleet's gauges from the database, parsed with prometheus_client's own text
parser; METRICS_TOKEN; open only with DEBUG when no token is set."""

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from fleet.models import CollectionRun, LiveProcess, Worker
from fleet.models.live import STALE_AFTER

TOKEN = "scrape-secret-1"
ROOT = Path(__file__).resolve().parent.parent


def scrape(token: str = TOKEN) -> dict:
    """{(name, frozenset(labels)): value} of one scrape."""
    response = Client().get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN


@pytest.fixture
def workers(db):
    up = Worker.objects.create(
        name="up-1",
        region="us-east-1",
        instance_id="i-00000000000000001",
        status="running",
        service_status="available",
        system_check="ok",
        instance_check="ok",
        cpu_percent=42.5,
        memory_percent=61.0,
        disk_percent=12.0,
        nodes_running=7,
        labs_count=3,
        license_state="licensed",
    )
    sick = Worker.objects.create(
        name="sick-2",
        region="eu-west-1",
        instance_id="i-00000000000000002",
        status="running",
        service_status="unavailable",
    )
    off = Worker.objects.create(
        name="", region="eu-west-1", instance_id="i-00000000000000003", status="stopped"
    )
    Worker.objects.create(
        name="gone", region="eu-west-1", instance_id="i-00000000000000004", status="terminated"
    )
    return up, sick, off


def labels(worker: Worker, **extra) -> frozenset:
    return frozenset(
        {
            "worker": worker.name or worker.instance_id,
            "instance_id": worker.instance_id,
            "region": worker.region,
            **extra,
        }.items()
    )


def test_per_worker_gauges(token, workers):
    up, sick, off = workers
    metrics = scrape()
    assert metrics[("cml_fleet_worker_up", labels(up))] == 1
    assert metrics[("cml_fleet_worker_up", labels(sick))] == 0
    assert metrics[("cml_fleet_worker_up", labels(off))] == 0
    assert metrics[("cml_fleet_worker_cml_available", labels(sick))] == 0
    assert metrics[("cml_fleet_worker_ec2_state", labels(off, state="stopped"))] == 1
    assert metrics[("cml_fleet_worker_ec2_state", labels(off, state="running"))] == 0
    assert metrics[("cml_fleet_worker_licence_state", labels(up, state="licensed"))] == 1
    assert metrics[("cml_fleet_worker_cpu_percent", labels(up))] == 42.5
    assert metrics[("cml_fleet_worker_memory_percent", labels(up))] == 61.0
    assert metrics[("cml_fleet_worker_disk_percent", labels(up))] == 12.0
    assert metrics[("cml_fleet_worker_nodes_running", labels(up))] == 7
    assert metrics[("cml_fleet_worker_labs", labels(up))] == 3
    # Unknown figures are absent, not 0; terminated workers are not exported at all.
    assert ("cml_fleet_worker_cpu_percent", labels(sick)) not in metrics
    assert not any(dict(key[1]).get("worker") == "gone" for key in metrics)


def test_collection_runs(token, db):
    now = timezone.now()
    CollectionRun.objects.create(
        kind="metrics",
        status="succeeded",
        started_at=now - timedelta(seconds=100),
        finished_at=now - timedelta(seconds=88),
        workers_failed=0,
    )
    CollectionRun.objects.create(
        kind="metrics",
        status="failed",
        started_at=now - timedelta(seconds=30),
        finished_at=now - timedelta(seconds=20),
        workers_failed=2,
    )
    CollectionRun.objects.create(
        kind="full",
        status="failed",
        started_at=now - timedelta(hours=3),
        finished_at=now - timedelta(hours=3) + timedelta(seconds=5),
    )
    metrics = scrape()
    kind = frozenset({"kind": "metrics"}.items())
    assert metrics[("cml_fleet_collection_last_duration_seconds", kind)] == pytest.approx(10)
    assert metrics[("cml_fleet_collection_last_workers_failed", kind)] == 2
    success = metrics[("cml_fleet_collection_last_success_timestamp_seconds", kind)]
    assert success == pytest.approx((now - timedelta(seconds=88)).timestamp())
    recent = "cml_fleet_collection_runs_last_hour"
    assert metrics[(recent, frozenset({"kind": "metrics", "status": "failed"}.items()))] == 1
    assert metrics[(recent, frozenset({"kind": "full", "status": "failed"}.items()))] == 0


def test_open_streams_from_every_process(token, db):
    LiveProcess.objects.report("web-a:1", 5)
    LiveProcess.objects.report("web-b:2", 3)
    LiveProcess.objects.create(name="dead:3", streams=100, seen_at=timezone.now() - STALE_AFTER * 2)
    assert scrape()[("cml_fleet_live_streams", frozenset())] == 8


def test_the_token_is_required(token, db):
    assert Client().get("/metrics").status_code == 401
    wrong = Client().get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"


def test_without_a_token_it_is_open_only_in_debug(settings, db):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = False
    closed = Client().get("/metrics")
    assert closed.status_code == 404 and "METRICS_TOKEN" in closed.json()["message"]
    settings.DEBUG = True
    assert Client().get("/metrics").status_code == 200


def test_the_grafana_dashboard_uses_only_metrics_that_exist(token, workers):
    """docs/grafana-dashboard.json is valid JSON, and every metric its queries name is one
    /metrics exports (a renamed metric would leave an empty panel)."""
    now = timezone.now()
    CollectionRun.objects.create(kind="full", status="succeeded", finished_at=now)
    LiveProcess.objects.report("web:1", 1)
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for query in queries for name in re.findall(r"cml_fleet_\w+", query)}
    exported = {name for name, _ in scrape()}
    assert named and named <= exported, named - exported


def test_idle_minutes_count_from_the_last_use_of_a_running_worker(token, workers):
    up, sick, off = workers
    now = timezone.now()
    Worker.objects.filter(pk=up.pk).update(
        last_activity_at=now - timedelta(minutes=90), running_since=now - timedelta(hours=5)
    )
    Worker.objects.filter(pk=sick.pk).update(running_since=now - timedelta(minutes=30))
    Worker.objects.filter(pk=off.pk).update(last_activity_at=now - timedelta(days=2))
    metrics = scrape()
    assert 90 <= metrics[("cml_fleet_worker_idle_minutes", labels(up))] < 91
    assert 30 <= metrics[("cml_fleet_worker_idle_minutes", labels(sick))] < 31  # since its start
    assert ("cml_fleet_worker_idle_minutes", labels(off)) not in metrics  # stopped: not idle
