"""The audit log: the list (the audit page's filters) and one entry, which is how an action's
202 is followed until its outcome is no longer `pending`."""

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router

from fleet.api.auth import need
from fleet.api.schemas import AuditOut, AuditPage, page_of
from fleet.models import ActionEntry, ActionName, ActionOutcome

router = Router(tags=["audit"])


@router.get("", response=AuditPage, summary="List audit entries, newest first")
def list_entries(
    request: HttpRequest,
    user: str = "",
    worker: str = "",
    action: ActionName | None = None,
    outcome: ActionOutcome | None = None,
    page: int = 1,
    per_page: int = 50,
):
    """`worker` is a worker id, or words of the target."""
    need(request, "view_actionentry")
    entries = ActionEntry.objects.matching(
        user.strip(), worker.strip(), action or "", outcome or ""
    )
    return page_of(entries, page, per_page)


@router.get("/{int:entry_id}", response=AuditOut, summary="One audit entry (poll an action)")
def get_entry(request: HttpRequest, entry_id: int):
    need(request, "view_actionentry")
    return get_object_or_404(ActionEntry, pk=entry_id)
