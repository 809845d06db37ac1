from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from fleet.models import Worker


@require_GET
@permission_required("fleet.view_worker", raise_exception=True)
def worker_list(request: HttpRequest) -> HttpResponse:
    workers = Worker.objects.all()
    return render(request, "fleet/worker_list.html", {"workers": workers})


@require_GET
@permission_required("fleet.view_worker", raise_exception=True)
def worker_detail(request: HttpRequest, pk: int) -> HttpResponse:
    worker = get_object_or_404(Worker, pk=pk)
    return render(request, "fleet/worker_detail.html", {"worker": worker})
