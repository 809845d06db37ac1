"""What the API answers: workers, labs, runs and audit entries, and a page of any of them."""

from datetime import datetime
from typing import Any

from django.core.paginator import InvalidPage, Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from ninja import Schema, Status

from fleet.api.errors import ApiError
from fleet.models import ActionEntry

PER_PAGE_MAX = 200


class LabOut(Schema):
    id: int
    worker_id: int
    lab_id: str
    title: str
    description: str
    state: str
    owner: str
    node_count: int
    link_count: int
    created: datetime | None
    modified: datetime | None


class WorkerOut(Schema):
    id: int
    name: str
    region: str
    instance_id: str
    status: str
    pending_action: str
    system_check: str
    instance_check: str
    instance_type: str
    public_ip: str | None
    private_ip: str | None
    cpu_percent: float | None
    memory_percent: float | None
    disk_percent: float | None
    service_status: str
    cml_version: str
    cml_ready: bool | None
    license_state: str
    nodes_running: int | None
    nodes_total: int | None
    labs_count: int | None
    last_polled_at: datetime | None
    last_error: str
    url: str

    @staticmethod
    def resolve_url(worker) -> str:
        return f"/api/v1/workers/{worker.pk}"


class WorkerDetailOut(WorkerOut):
    ami_id: str
    tags: dict[str, Any]
    cml_endpoint: str
    cml_cpu_percent: float | None
    cml_memory_used: int | None
    cml_memory_total: int | None
    cml_disk_used: int | None
    cml_disk_total: int | None
    allocated_cpus: int | None
    compute_hosts: list[Any]
    licence: dict[str, Any]
    labs_polled_at: datetime | None
    consecutive_failures: int
    pending_since: datetime | None
    labs: list[LabOut]

    @staticmethod
    def resolve_labs(worker) -> list:
        return list(worker.labs.all())


class RunOut(Schema):
    id: int
    kind: str
    trigger: str
    status: str
    scope: str
    started_at: datetime
    finished_at: datetime | None
    duration_seconds: float | None
    workers_total: int
    workers_seen: int
    workers_changed: int
    workers_failed: int
    aws_calls: int
    message: str

    @staticmethod
    def resolve_duration_seconds(run) -> float | None:
        return run.duration.total_seconds() if run.duration else None


class RunDetailOut(RunOut):
    errors: dict[str, str]


class AuditOut(Schema):
    id: int
    username: str
    action: str
    worker_id: int | None
    target: str
    lab_id: str
    outcome: str
    message: str
    started_at: datetime
    finished_at: datetime | None
    url: str

    @staticmethod
    def resolve_url(entry) -> str:
        return f"/api/v1/audit/{entry.pk}"


class Page(Schema):
    count: int
    page: int
    pages: int
    per_page: int


class WorkerPage(Page):
    results: list[WorkerOut]


class LabPage(Page):
    results: list[LabOut]


class RunPage(Page):
    results: list[RunOut]


class AuditPage(Page):
    results: list[AuditOut]


def page_of(items: QuerySet, page: int, per_page: int) -> dict:
    """One page of a queryset as {count, page, pages, per_page, results}; a page that does not
    exist is a 400 saying which do."""
    if not 1 <= per_page <= PER_PAGE_MAX:
        raise ApiError(400, f"per_page must be 1 to {PER_PAGE_MAX}.", "invalid")
    paginator = Paginator(items, per_page)
    try:
        current = paginator.page(page)
    except InvalidPage:
        raise ApiError(
            400, f"page {page} does not exist: pages 1 to {paginator.num_pages}.", "invalid"
        ) from None
    return {
        "count": paginator.count,
        "page": current.number,
        "pages": paginator.num_pages,
        "per_page": per_page,
        "results": list(current.object_list),
    }


def accepted(response: HttpResponse, entry: ActionEntry):
    """202 with the audit entry, which `Location` names too: poll it until `outcome` is no
    longer `pending`."""
    response["Location"] = f"/api/v1/audit/{entry.pk}"
    return Status(202, entry)
