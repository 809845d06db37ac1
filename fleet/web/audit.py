"""The audit log page: every action, newest first, filtered by user, worker, action, outcome."""

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from fleet.models import ActionEntry, ActionName, ActionOutcome

PER_PAGE = 50


@require_GET
@permission_required("fleet.view_actionentry", raise_exception=True)
def audit_list(request: HttpRequest) -> HttpResponse:
    entries = ActionEntry.objects.select_related("worker")
    filters = {
        "user": request.GET.get("user", "").strip(),
        "worker": request.GET.get("worker", "").strip(),
        "action": request.GET.get("action", ""),
        "outcome": request.GET.get("outcome", ""),
    }
    entries = entries.matching(**filters)
    page = Paginator(entries, PER_PAGE).get_page(request.GET.get("page"))
    query = "&".join(f"{k}={v}" for k, v in filters.items() if v)
    context = {
        "page": page,
        "filters": filters,
        "query": query,
        "actions": ActionName.choices,
        "outcomes": ActionOutcome.choices,
    }
    return render(request, "fleet/audit_list.html", context)
