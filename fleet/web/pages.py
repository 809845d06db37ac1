"""Pages and actions. Thin: parse, call the domain, render; the logic lives elsewhere."""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from fleet.actions.refresh import refresh_all, refresh_worker
from fleet.live.fragments import render_worker_fragments
from fleet.live.history import attach_history, chart_window, fleet_charts, worker_charts
from fleet.models import CollectionRun, ServiceStatus, Worker, WorkerStatus
from fleet.models.changes import log_position
from fleet.tasks import next_metrics_cycle_at
from fleet.web.csv_export import workers_csv
from fleet.web.health import fleet_health
from fleet.web.worker_list import PER_PAGE, SORTS, filtered_workers, parse_list_state


@require_GET
@permission_required("fleet.view_worker", raise_exception=True)
def worker_list(request: HttpRequest) -> HttpResponse:
    """The list: filters, search, sort and page from the URL; CSV of the whole filtered list."""
    state = parse_list_state(request.GET, settings.AWS_REGIONS)
    workers = filtered_workers(state)
    if request.GET.get("format") == "csv":
        response = HttpResponse(workers_csv(workers), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="cml-fleet-workers.csv"'
        return response
    page = Paginator(workers, PER_PAGE).get_page(state.page)
    attach_history(page.object_list)
    window = chart_window(state.window)
    context = {
        **fleet_charts(window),
        "state": state,
        "page": page,
        "stats": Worker.objects.stats(),
        "latest_run": CollectionRun.objects.latest_fleet_wide(),
        "log_position": log_position(),
        "regions": settings.AWS_REGIONS,
        "statuses": WorkerStatus.choices,
        "services": ServiceStatus.choices,
        "sort_columns": SORTS,
        "any_workers": page.paginator.count or Worker.objects.exists(),
    }
    template = "fleet/partials/worker_table.html" if request.htmx else "fleet/worker_list.html"
    return render(request, template, context)


@require_GET
@permission_required("fleet.view_worker", raise_exception=True)
def worker_detail(request: HttpRequest, pk: int) -> HttpResponse:
    worker = get_object_or_404(Worker.objects.prefetch_related("labs"), pk=pk)
    try:
        window = chart_window(request.GET.get("window"), worker)
    except ValueError as error:
        return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
    context = {
        **worker_charts(worker, window),
        "fragment": f"history-{window}",
        "worker": worker,
        "next_cycle_at": next_metrics_cycle_at(),
        "log_position": log_position(),
    }
    return render(request, "fleet/worker_detail.html", context)


@require_POST
@permission_required("fleet.refresh_worker", raise_exception=True)
def worker_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Collect one worker now (labs included) and answer with its fresh fragments."""
    note = refresh_worker(request.user, get_object_or_404(Worker, pk=pk)).message
    worker = Worker.objects.prefetch_related("labs").get(pk=pk)
    if request.htmx:
        return HttpResponse(render_worker_fragments(worker, request) + _toast(note))
    messages.info(request, note)
    return _back(request, worker.get_absolute_url())


@require_POST
@permission_required("fleet.refresh_worker", raise_exception=True)
async def fleet_refresh(request: HttpRequest) -> HttpResponse:
    """Queue a full collection (labs included) for the cluster, at most one at a time."""
    note = (await sync_to_async(refresh_all)(request.user)).message
    if request.htmx:
        return HttpResponse(_toast(note))
    await sync_to_async(messages.info)(request, note)
    return _back(request, "/")


def _toast(note: str) -> str:
    return render_to_string("fleet/partials/toast.html", {"note": note})


def _back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Post/redirect/get back to the page the form was on (same host only)."""
    referer = request.headers.get("referer", "")
    safe = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return HttpResponseRedirect(referer if safe else fallback)


@require_GET
@login_not_required
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, report = fleet_health()
    report["status"] = "ok" if healthy else "unhealthy"
    return JsonResponse(report, status=200 if healthy else 503)
