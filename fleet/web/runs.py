"""Pages for the collection runs: a list and one run with its per-worker errors."""

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from fleet.models import CollectionRun, RunKind, RunStatus, Worker

RUNS_PER_PAGE = 50


@require_GET
@permission_required("fleet.view_collectionrun", raise_exception=True)
def run_list(request: HttpRequest) -> HttpResponse:
    runs = CollectionRun.objects.all()
    kind = request.GET.get("kind", "")
    note = ""
    if kind in RunKind.values:
        runs = runs.filter(kind=kind)
    elif kind:
        note = f"Unknown kind {kind!r}: showing every run."
        kind = ""
    page = Paginator(runs, RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "kind": kind, "kinds": RunKind.choices, "note": note}
    return render(request, "fleet/run_list.html", context)


@require_GET
@permission_required("fleet.view_collectionrun", raise_exception=True)
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(CollectionRun, pk=pk)
    names = Worker.objects.in_bulk([int(key) for key in run.errors if key.isdigit()])
    errors = [
        (names.get(int(key)) if key.isdigit() else None, key, message)
        for key, message in sorted(run.errors.items(), key=lambda item: item[0].zfill(12))
    ]
    context = {"run": run, "errors": errors, "skipped": run.status == RunStatus.SKIPPED}
    return render(request, "fleet/run_detail.html", context)
