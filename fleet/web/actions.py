"""The action endpoints: thin views over fleet.actions. htmx requests get the changed fragments
and a toast; without JavaScript the same forms redirect back with a message."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from fleet.actions import idle
from fleet.actions.audit import UpstreamError, require
from fleet.actions.importing import import_workers, parse_tags, preview
from fleet.actions.labs import VERBS, download_lab, import_lab, lab_action
from fleet.actions.licence import deregister_licence, register_licence
from fleet.actions.workers import bulk, start_worker, stop_worker, terminate_worker
from fleet.live.fragments import render_worker_fragment, render_worker_fragments
from fleet.models import ActionEntry, ActionName, ActionOutcome, Lab, Worker
from fleet.web.pages import _back, _toast

LEVELS = {
    ActionOutcome.SUCCEEDED: messages.SUCCESS,
    ActionOutcome.PENDING: messages.INFO,
    ActionOutcome.NOOP: messages.INFO,
    ActionOutcome.FAILED: messages.ERROR,
}


def _answer(request: HttpRequest, worker: Worker, entries: list[ActionEntry]) -> HttpResponse:
    """The worker's fresh fragments and a toast (htmx), or a redirect back with messages."""
    if request.htmx:
        worker = Worker.objects.prefetch_related("labs").get(pk=worker.pk)
        note = " ".join(entry.message for entry in entries)
        return HttpResponse(render_worker_fragments(worker, request) + _toast(note))
    for entry in entries:
        messages.add_message(request, LEVELS[entry.outcome], entry.message)
    return _back(request, worker.get_absolute_url())


@require_POST
@permission_required("fleet.start_worker", raise_exception=True)
def worker_start(request: HttpRequest, pk: int) -> HttpResponse:
    worker = get_object_or_404(Worker, pk=pk)
    return _answer(request, worker, [start_worker(request.user, worker)])


@require_POST
@permission_required("fleet.stop_worker", raise_exception=True)
def worker_stop(request: HttpRequest, pk: int) -> HttpResponse:
    worker = get_object_or_404(Worker, pk=pk)
    return _answer(request, worker, [stop_worker(request.user, worker)])


@require_POST
@permission_required("fleet.terminate_worker", raise_exception=True)
def worker_terminate(request: HttpRequest, pk: int) -> HttpResponse:
    worker = get_object_or_404(Worker, pk=pk)
    entry = terminate_worker(request.user, worker, request.POST.get("confirm", ""))
    return _answer(request, worker, [entry])


@require_POST
@permission_required("fleet.snooze_worker", raise_exception=True)
def worker_snooze(request: HttpRequest, pk: int) -> HttpResponse:
    return _idle_control(request, pk, idle.snooze, _hours(request))


@require_POST
@permission_required("fleet.mute_worker", raise_exception=True)
def worker_mute(request: HttpRequest, pk: int) -> HttpResponse:
    return _idle_control(request, pk, idle.mute, _hours(request))


@require_POST
@permission_required("fleet.set_auto_pause", raise_exception=True)
def worker_auto_pause(request: HttpRequest, pk: int) -> HttpResponse:
    choice = {"on": True, "off": False}.get(request.POST.get("auto_pause", ""))
    return _idle_control(request, pk, idle.set_auto_pause, choice)


def _hours(request: HttpRequest) -> int | None:
    value = request.POST.get("hours", "")
    return int(value) if value.isdigit() and len(value) < 4 else None


def _idle_control(request: HttpRequest, pk: int, control, value) -> HttpResponse:
    worker = get_object_or_404(Worker, pk=pk)
    try:
        if value is None:
            raise ValueError("Choose one of the offered values.")
        entry = control(request.user, worker, value)
    except ValueError as error:
        return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
    return _answer(request, worker, [entry])


@require_POST
def workers_bulk(request: HttpRequest) -> HttpResponse:
    """Start or stop the selected rows: one result per worker."""
    action = {"start": ActionName.START_WORKER, "stop": ActionName.STOP_WORKER}.get(
        request.POST.get("action", "")
    )
    if action is None:
        raise PermissionDenied("Unknown action.")
    require(request.user, action)
    pks = [int(pk) for pk in request.POST.getlist("pks") if pk.isdigit()]
    workers = list(Worker.objects.filter(pk__in=pks).order_by("name", "pk"))
    entries = bulk(request.user, action, workers) if workers else []
    if not entries:
        note = "Select at least one worker."
    else:
        note = f"{len(entries)} worker(s): " + " ".join(e.message for e in entries)
    if request.htmx:
        rows = "".join(
            render_worker_fragment(Worker.objects.get(pk=w.pk), "row", request, oob=True)
            for w in workers
        )
        results = render_to_string("fleet/partials/action_results.html", {"entries": entries})
        return HttpResponse(rows + _toast(note) + results)
    if not entries:
        messages.warning(request, note)
    for entry in entries:
        messages.add_message(request, LEVELS[entry.outcome], entry.message)
    return _back(request, "/")


@require_POST
def lab_verb(request: HttpRequest, pk: int, lab_id: str, verb: str) -> HttpResponse:
    """Start, stop, wipe or delete a lab; delete asks for confirmation first."""
    action = VERBS[verb][0]
    require(request.user, action)
    worker = get_object_or_404(Worker, pk=pk)
    lab = get_object_or_404(Lab, worker=worker, lab_id=lab_id)
    if verb == "delete" and request.POST.get("confirm") != "yes":
        return render(request, "fleet/lab_delete_confirm.html", {"worker": worker, "lab": lab})
    return _answer(request, worker, [lab_action(request.user, worker, lab, verb)])


@require_GET
@permission_required("fleet.download_lab", raise_exception=True)
def lab_download(request: HttpRequest, pk: int, lab_id: str) -> HttpResponse:
    worker = get_object_or_404(Worker, pk=pk)
    lab = get_object_or_404(Lab, worker=worker, lab_id=lab_id)
    entry, topology = download_lab(request.user, worker, lab)
    if entry.outcome != ActionOutcome.SUCCEEDED:
        messages.error(request, entry.message)
        return redirect(worker)
    response = HttpResponse(topology, content_type="application/x-yaml; charset=utf-8")
    filename = "".join(c if c.isalnum() or c in "-_." else "-" for c in lab.title or lab.lab_id)
    response["Content-Disposition"] = f'attachment; filename="{filename}.yaml"'
    return response


@require_POST
@permission_required("fleet.import_lab", raise_exception=True)
def lab_import(request: HttpRequest, pk: int) -> HttpResponse:
    """Upload a topology file (at most LAB_IMPORT_MAX_BYTES) and import it onto the worker."""
    worker = get_object_or_404(Worker, pk=pk)
    upload = request.FILES.get("topology")
    limit = settings.LAB_IMPORT_MAX_BYTES
    if upload is None or upload.size > limit:
        note = "Choose a topology file." if upload is None else f"The file is over {limit} bytes."
        messages.error(request, note)
        return redirect(worker)
    title = request.POST.get("title", "").strip()[:255]
    entry = import_lab(request.user, worker, upload.read(), title)
    return _answer(request, worker, [entry])


@sensitive_post_parameters("token")
@require_POST
@permission_required("fleet.register_licence", raise_exception=True)
def licence_register(request: HttpRequest, pk: int) -> HttpResponse:
    worker = get_object_or_404(Worker, pk=pk)
    reregister = request.POST.get("reregister") == "on"
    entry = register_licence(request.user, worker, request.POST.get("token", ""), reregister)
    return _answer(request, worker, [entry])


@require_POST
@permission_required("fleet.deregister_licence", raise_exception=True)
def licence_deregister(request: HttpRequest, pk: int) -> HttpResponse:
    worker = get_object_or_404(Worker, pk=pk)
    return _answer(request, worker, [deregister_licence(request.user, worker)])


@require_http_methods(["GET", "POST"])
@permission_required("fleet.import_workers", raise_exception=True)
def workers_import(request: HttpRequest) -> HttpResponse:
    """Import workers: the form, a preview of what would be added, then the import."""
    data = request.POST if request.method == "POST" else request.GET
    regions = data.getlist("region") or ([] if request.method == "GET" else [])
    tags_text = data.get("tags", "")
    ids_text = data.get("instance_ids", "")
    context = {
        "regions": settings.AWS_REGIONS,
        "chosen": regions,
        "tags": tags_text,
        "instance_ids": ids_text,
    }
    if request.method == "POST":
        try:
            tags = parse_tags(tags_text.split())
            ids = ids_text.split()
            if "import" in request.POST:
                entry, created = import_workers(request.user, regions, tags, ids)
                level = LEVELS[entry.outcome]
                messages.add_message(request, level, entry.message)
                return (
                    redirect("fleet:worker_list")
                    if entry.outcome != "failed"
                    else redirect("fleet:workers_import")
                )
            context["found"] = preview(regions, tags, ids)
            context["new"] = sum(not f.known for f in context["found"])
        except (ValueError, UpstreamError) as error:
            context["error"] = str(error)
    return render(request, "fleet/workers_import.html", context)
