"""The NinjaAPI: its routers under /api/v1/, the OpenAPI docs at /api/docs, and its URLs, which
answer for themselves (401 in JSON, not the login page's redirect)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from ninja import NinjaAPI

from fleet.api import audit, labs, runs, workers
from fleet.api.auth import AUTH
from fleet.api.errors import error_response, install, json_errors

api = NinjaAPI(
    title="CML Fleet Monitor API",
    version="1",
    description="Workers, labs, collection runs and the audit log; actions answer 202 with "
    "their audit entry. Authenticate with the session or `Authorization: Bearer <token>`.",
    auth=AUTH,
    urls_namespace="api",
)
install(api)
api.add_router("/v1/workers", workers.router)
api.add_router("/v1", labs.router)
api.add_router("/v1/runs", runs.router)
api.add_router("/v1/audit", audit.router)

DOCS = {"api-root", "openapi-json", "openapi-view"}


@login_not_required
def unknown(request, rest: str = ""):
    return error_response(404, f"No API endpoint at {request.path}.")


def urlpatterns() -> list:
    """The API's URLs: every endpoint answers JSON errors itself and needs no login redirect;
    the docs stay behind the login like every page."""
    patterns, _, _ = api.urls
    for pattern in patterns:
        if pattern.name not in DOCS:
            pattern.callback = login_not_required(json_errors(pattern.callback))
    return [*patterns, path("v1/<path:rest>", unknown), path("v1/", unknown)]
