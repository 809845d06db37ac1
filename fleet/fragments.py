"""The swappable fragments of the pages: one partial template each, rendered the same way for
the full page, the Refresh button's answer and the live updates.

Fragments never depend on who is looking (actions a user may not take are hidden by CSS and
refused by the server), so the live feed renders each one once for every browser.
"""

from django.http import HttpRequest
from django.template.loader import render_to_string

from fleet.history import attach_history
from fleet.models import Worker

WORKER_FRAGMENTS = {
    "row": "fleet/partials/worker_row.html",
    "aws": "fleet/partials/worker_aws.html",
    "cml": "fleet/partials/worker_cml.html",
    "labs": "fleet/partials/worker_labs.html",
    "history": "fleet/partials/worker_history.html",
}
NEEDS_HISTORY = {"row", "history"}


def event_name(worker_pk: int, fragment: str) -> str:
    """The SSE event (and `sse-swap` value) that carries one fragment of one worker."""
    return f"worker-{worker_pk}-{fragment}"


def render_worker_fragment(
    worker: Worker, fragment: str, request: HttpRequest | None = None, oob: bool = False
) -> str:
    """Render one fragment. Callers rendering many workers call `attach_history` on all of
    them first (one query); a lone worker gets its history here."""
    if fragment in NEEDS_HISTORY and not hasattr(worker, "history"):
        attach_history([worker])
    return render_to_string(
        WORKER_FRAGMENTS[fragment], {"worker": worker, "oob": oob}, request=request
    )


def render_worker_fragments(worker: Worker, request: HttpRequest | None = None) -> str:
    """Every fragment of a worker as out-of-band swaps: the page swaps the ones it shows."""
    return "".join(
        render_worker_fragment(worker, name, request, oob=True) for name in WORKER_FRAGMENTS
    )
