"""Labs: every lab (by worker and state), and the lab actions (start, stop, wipe, delete)
through fleet.actions.labs, each answering 202 with its audit entry."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from ninja import Router

from fleet.actions.audit import require
from fleet.actions.labs import VERBS, lab_action
from fleet.api.auth import need
from fleet.api.schemas import AuditOut, LabOut, LabPage, accepted, page_of
from fleet.models import Lab, LabState, Worker

router = Router(tags=["labs"])


@router.get("/labs", response=LabPage, summary="List labs")
def list_labs(
    request: HttpRequest,
    worker: int | None = None,
    state: LabState | None = None,
    page: int = 1,
    per_page: int = 50,
):
    need(request, "view_lab")
    labs = Lab.objects.order_by("worker_id", "title", "pk")
    if worker is not None:
        labs = labs.filter(worker_id=worker)
    if state is not None:
        labs = labs.filter(state=state)
    return page_of(labs, page, per_page)


@router.get("/workers/{int:worker_id}/labs/{lab_id}", response=LabOut, summary="One lab")
def get_lab(request: HttpRequest, worker_id: int, lab_id: str):
    need(request, "view_lab")
    return get_object_or_404(Lab, worker_id=worker_id, lab_id=lab_id)


def _act(request: HttpRequest, response: HttpResponse, worker_id: int, lab_id: str, verb: str):
    require(request.auth, VERBS[verb][0])  # before looking: no probing of lab ids
    worker = get_object_or_404(Worker, pk=worker_id)
    lab = get_object_or_404(Lab, worker=worker, lab_id=lab_id)
    return accepted(response, lab_action(request.auth, worker, lab, verb))


@router.post("/workers/{int:worker_id}/labs/{lab_id}/start", response={202: AuditOut})
def start_lab(request: HttpRequest, response: HttpResponse, worker_id: int, lab_id: str):
    return _act(request, response, worker_id, lab_id, "start")


@router.post("/workers/{int:worker_id}/labs/{lab_id}/stop", response={202: AuditOut})
def stop_lab(request: HttpRequest, response: HttpResponse, worker_id: int, lab_id: str):
    return _act(request, response, worker_id, lab_id, "stop")


@router.post("/workers/{int:worker_id}/labs/{lab_id}/wipe", response={202: AuditOut})
def wipe_lab(request: HttpRequest, response: HttpResponse, worker_id: int, lab_id: str):
    return _act(request, response, worker_id, lab_id, "wipe")


@router.post("/workers/{int:worker_id}/labs/{lab_id}/delete", response={202: AuditOut})
def delete_lab(request: HttpRequest, response: HttpResponse, worker_id: int, lab_id: str):
    """Delete the lab on CML (CML deletes stopped, wiped labs only)."""
    return _act(request, response, worker_id, lab_id, "delete")
