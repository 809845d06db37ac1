"""Collection runs: the list (by kind and status) and one run with its per-worker errors."""

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router

from fleet.api.auth import need
from fleet.api.schemas import RunDetailOut, RunPage, page_of
from fleet.models import CollectionRun, RunKind, RunStatus

router = Router(tags=["runs"])


@router.get("", response=RunPage, summary="List collection runs, newest first")
def list_runs(
    request: HttpRequest,
    kind: RunKind | None = None,
    status: RunStatus | None = None,
    page: int = 1,
    per_page: int = 50,
):
    need(request, "view_collectionrun")
    runs = CollectionRun.objects.order_by("-started_at", "-pk")
    if kind is not None:
        runs = runs.filter(kind=kind)
    if status is not None:
        runs = runs.filter(status=status)
    return page_of(runs, page, per_page)


@router.get("/{int:run_id}", response=RunDetailOut, summary="One run, with its errors")
def get_run(request: HttpRequest, run_id: int):
    need(request, "view_collectionrun")
    return get_object_or_404(CollectionRun, pk=run_id)
