"""Workers: the list (the page's filters, sort and pagination, through its ListState), one
worker, and the worker actions (refresh, start, stop, refresh all), each answering 202 with
its audit entry."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Router

from fleet.actions.refresh import refresh_all, refresh_worker
from fleet.actions.workers import start_worker, stop_worker
from fleet.api.auth import need
from fleet.api.errors import ApiError
from fleet.api.schemas import AuditOut, WorkerDetailOut, WorkerPage, accepted, page_of
from fleet.models import Worker
from fleet.web.worker_list import PER_PAGE, filtered_workers, parse_list_state

router = Router(tags=["workers"])


@router.get("", response=WorkerPage, summary="List workers")
def list_workers(request: HttpRequest, per_page: int = PER_PAGE):
    """The worker list's query: `q`, `region`, `status`, `service`, `trouble=1`,
    `idle=1`, `terminated=1`, `sort` (a column, `-column` descending) and `page`, as on the page;
    a value the page would ignore is a 400 here."""
    need(request, "view_worker")
    state = parse_list_state(request.GET, settings.AWS_REGIONS)
    if state.notes:
        notes = " ".join(note.removeprefix("Ignored ") for note in state.notes)
        raise ApiError(400, f"Bad query: {notes}", "invalid")
    if not state.page.isdigit():
        raise ApiError(400, f"page must be a positive whole number, not {state.page!r}.", "invalid")
    return page_of(filtered_workers(state), int(state.page), per_page)


@router.get("/{int:worker_id}", response=WorkerDetailOut, summary="One worker, with its labs")
def get_worker(request: HttpRequest, worker_id: int):
    need(request, "view_worker")
    return get_object_or_404(Worker.objects.prefetch_related("labs"), pk=worker_id)


@router.post("/refresh", response={202: AuditOut}, summary="Refresh every worker")
def refresh_fleet(request: HttpRequest, response: HttpResponse):
    """Queue one full cycle (at most one queued or running at a time)."""
    return accepted(response, refresh_all(request.auth))


@router.post("/{int:worker_id}/refresh", response={202: AuditOut}, summary="Refresh a worker")
def refresh(request: HttpRequest, response: HttpResponse, worker_id: int):
    return accepted(response, refresh_worker(request.auth, get_object_or_404(Worker, pk=worker_id)))


@router.post("/{int:worker_id}/start", response={202: AuditOut}, summary="Start a worker")
def start(request: HttpRequest, response: HttpResponse, worker_id: int):
    return accepted(response, start_worker(request.auth, get_object_or_404(Worker, pk=worker_id)))


@router.post("/{int:worker_id}/stop", response={202: AuditOut}, summary="Stop a worker")
def stop(request: HttpRequest, response: HttpResponse, worker_id: int):
    return accepted(response, stop_worker(request.auth, get_object_or_404(Worker, pk=worker_id)))
