"""Pages and actions. Thin: parse, call the domain, render; the logic lives elsewhere."""

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_q.tasks import async_task

from fleet.collect import collect
from fleet.fragments import render_worker_fragments
from fleet.health import fleet_health
from fleet.history import attach_history
from fleet.models import RunKind, RunTrigger, Worker

REFRESH_DEADLINE_SECONDS = 20


@require_GET
@permission_required("fleet.view_worker", raise_exception=True)
def worker_list(request: HttpRequest) -> HttpResponse:
    workers = list(Worker.objects.all())
    attach_history(workers)
    return render(request, "fleet/worker_list.html", {"workers": workers})


@require_GET
@permission_required("fleet.view_worker", raise_exception=True)
def worker_detail(request: HttpRequest, pk: int) -> HttpResponse:
    worker = get_object_or_404(Worker.objects.prefetch_related("labs"), pk=pk)
    attach_history([worker])
    return render(request, "fleet/worker_detail.html", {"worker": worker})


@require_POST
@permission_required("fleet.refresh_worker", raise_exception=True)
def worker_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Collect one worker now (labs included) and answer with its fresh fragments."""
    worker = get_object_or_404(Worker, pk=pk)
    interval = settings.REFRESH_MIN_INTERVAL_SECONDS
    if worker.polled_within(interval):
        note = f"{worker} was refreshed {worker.seconds_since_poll()} s ago; showing that."
    else:
        run = collect(
            [pk],
            kind=RunKind.LABS,
            trigger=RunTrigger.REFRESH,
            worker_deadline=REFRESH_DEADLINE_SECONDS,
        )
        error = run.errors.get(str(pk)) or run.message
        note = f"Refreshed {worker}." + (f" Error: {error}" if error else "")
    worker = Worker.objects.prefetch_related("labs").get(pk=pk)
    if request.htmx:
        return HttpResponse(render_worker_fragments(worker, request) + _toast(note))
    messages.info(request, note)
    return _back(request, worker.get_absolute_url())


@require_POST
@permission_required("fleet.refresh_worker", raise_exception=True)
async def fleet_refresh(request: HttpRequest) -> HttpResponse:
    """Queue a full collection (labs included) for the cluster and say so."""
    await sync_to_async(async_task)(
        "fleet.tasks.collect_labs", trigger=RunTrigger.REFRESH, task_name="refresh all workers"
    )
    note = "A collection of every worker is queued; the pages update as it runs."
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
