"""`/metrics` for Prometheus, computed from the database at each scrape (so every process
answers the same): per-worker gauges labelled with worker name, instance id and region, the
collection runs' durations and failures, and the open live streams.

Protected by METRICS_TOKEN (`Authorization: Bearer …`); with no token it is open only while
DEBUG is on."""

import hmac
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import BooleanField, Count, ExpressionWrapper, Max
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4  # every Prometheus reads it

from fleet.models import (
    CollectionRun,
    LicenseState,
    LiveProcess,
    RunKind,
    RunStatus,
    ServiceStatus,
    Worker,
    WorkerStatus,
)
from fleet.models.workers import IN_TROUBLE

PREFIX = "cml_fleet"
LABELS = ["worker", "instance_id", "region"]
RECENT = timedelta(hours=1)
# Worker field → (metric name, help): figures exported as they are stored; None is no sample.
FIGURES = {
    "cpu_percent": ("cpu_percent", "CPU utilisation (CloudWatch), percent."),
    "memory_percent": ("memory_percent", "Memory used (CloudWatch agent), percent."),
    "disk_percent": ("disk_percent", "Disk used (CloudWatch agent), percent."),
    "nodes_running": ("nodes_running", "CML nodes running."),
    "labs_count": ("labs", "CML labs on the worker."),
}


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=labels)


def worker_metrics() -> list[GaugeMetricFamily]:
    """One query: every worker that is not terminated (terminated ones would be series
    forever), with `up` = running, CML available and no failing EC2 status check."""
    up = _gauge("worker_up", "1 when running with CML available and EC2 checks passing.", LABELS)
    ec2 = _gauge("worker_ec2_state", "1 for the worker's EC2 state.", [*LABELS, "state"])
    cml = _gauge("worker_cml_available", "1 when the CML service answers as available.", LABELS)
    licence = _gauge("worker_licence_state", "1 for the CML licence state.", [*LABELS, "state"])
    figures = {
        field: _gauge(f"worker_{name}", text, LABELS) for field, (name, text) in FIGURES.items()
    }
    idle = _gauge(
        "worker_idle_minutes",
        "Minutes since a running worker's CML was last used (or it started, if later).",
        LABELS,
    )
    now = timezone.now()
    workers = (
        Worker.objects.visible()
        .annotate(trouble=ExpressionWrapper(IN_TROUBLE, output_field=BooleanField()))
        .only(
            "name",
            "instance_id",
            "region",
            "status",
            "service_status",
            "license_state",
            "last_activity_at",
            "running_since",
            *FIGURES,
        )
        .order_by("pk")
    )
    for worker in workers:
        labels = [worker.name or worker.instance_id, worker.instance_id, worker.region]
        running = worker.status == WorkerStatus.RUNNING
        up.add_metric(labels, float(running and not worker.trouble))
        for state in WorkerStatus.values:
            ec2.add_metric([*labels, state], float(worker.status == state))
        cml.add_metric(labels, float(worker.service_status == ServiceStatus.AVAILABLE))
        for state in LicenseState.values:
            licence.add_metric([*labels, state], float(worker.license_state == state))
        for field, family in figures.items():
            value = getattr(worker, field)
            if value is not None:
                family.add_metric(labels, float(value))
        if running and worker.last_used_at is not None:
            idle.add_metric(labels, max(0.0, (now - worker.last_used_at).total_seconds() / 60))
    return [up, ec2, cml, licence, *figures.values(), idle]


def run_metrics(now=None) -> list[GaugeMetricFamily]:
    """The collection: the last finished fleet-wide run of each kind (duration, when, workers
    failed) and how many runs of each kind and status started in the last hour."""
    now = now or timezone.now()
    duration = _gauge(
        "collection_last_duration_seconds", "Duration of the last finished cycle.", ["kind"]
    )
    finished = _gauge(
        "collection_last_finished_timestamp_seconds", "When the last cycle finished.", ["kind"]
    )
    failed = _gauge(
        "collection_last_workers_failed", "Workers that failed in the last cycle.", ["kind"]
    )
    success = _gauge(
        "collection_last_success_timestamp_seconds",
        "When the last successful cycle finished.",
        ["kind"],
    )
    recent = _gauge(
        "collection_runs_last_hour", "Cycles started in the last hour.", ["kind", "status"]
    )
    fleet = CollectionRun.objects.fleet_wide()
    for kind in RunKind.values:
        last = (
            fleet.filter(kind=kind, finished_at__isnull=False)
            .exclude(status=RunStatus.SKIPPED)
            .order_by("-finished_at")
            .first()
        )
        if last is not None:
            duration.add_metric([kind], last.duration.total_seconds())
            finished.add_metric([kind], last.finished_at.timestamp())
            failed.add_metric([kind], float(last.workers_failed))
    succeeded = (
        fleet.filter(status=RunStatus.SUCCEEDED).values("kind").annotate(at=Max("finished_at"))
    )
    for row in succeeded:
        if row["at"] is not None:
            success.add_metric([row["kind"]], row["at"].timestamp())
    counts = {
        (row["kind"], row["status"]): row["n"]
        for row in CollectionRun.objects.filter(started_at__gte=now - RECENT)
        .values("kind", "status")
        .annotate(n=Count("pk"))
    }
    for kind in RunKind.values:
        for status in RunStatus.values:
            recent.add_metric([kind, status], float(counts.get((kind, status), 0)))
    return [duration, finished, failed, success, recent]


def stream_metrics() -> list[GaugeMetricFamily]:
    streams = _gauge("live_streams", "Live page streams open, all web processes.", [])
    streams.add_metric([], float(LiveProcess.objects.open_streams()))
    return [streams]


class FleetCollector:
    """The fleet's metrics for one scrape."""

    def collect(self):
        yield from worker_metrics()
        yield from run_metrics()
        yield from stream_metrics()


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector())
    return generate_latest(registry)


def _refusal(request: HttpRequest) -> JsonResponse | None:
    token = settings.METRICS_TOKEN
    if not token:
        if settings.DEBUG:
            return None
        return JsonResponse(
            {"error": "disabled", "message": "Set METRICS_TOKEN to enable /metrics."}, status=404
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        response = JsonResponse(
            {"error": "unauthorized", "message": "Send Authorization: Bearer <METRICS_TOKEN>."},
            status=401,
        )
        response["WWW-Authenticate"] = "Bearer"
        return response
    return None


@require_GET
@login_not_required  # a scraper has no session: METRICS_TOKEN guards it
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
