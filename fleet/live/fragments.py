"""The swappable fragments of the pages: one partial template each, rendered the same way for
the full page, the Refresh button's answer and the live updates.

Fragments never depend on who is looking (actions a user may not take are hidden by CSS and
refused by the server), so the live feed renders each one once for every browser.
"""

from collections.abc import Iterable

from django.http import HttpRequest
from django.template.loader import render_to_string

from fleet.live.history import attach_history
from fleet.models import Worker
from fleet.models.field_groups import (
    ACTIONS,
    ACTIVITY,
    CLOUDWATCH,
    CML,
    CML_STATS,
    EC2,
    IDENTITY,
    IDLE_CONTROLS,
    LABS,
    LICENCE,
)
from fleet.models.samples import SAMPLED_CML_FIGURES

WORKER_FRAGMENTS = {
    "row": "fleet/partials/worker_row.html",
    "aws": "fleet/partials/worker_aws.html",
    "cml": "fleet/partials/worker_cml.html",
    "labs": "fleet/partials/worker_labs.html",
    "history": "fleet/partials/worker_history.html",
    "actions": "fleet/partials/worker_actions.html",
    "idle": "fleet/partials/worker_idle.html",
}
NEEDS_HISTORY = {"row", "history"}

# The worker fields (and "labs", the worker's lab rows) each fragment shows: a change to a
# field re-renders exactly these fragments. The history charts plot the samples taken of the
# figures listed for them; each cycle that changes one of those also adds a sample.
FRAGMENT_FIELDS = {
    "row": {
        *IDENTITY.fields,
        *CLOUDWATCH.fields,
        "status",
        "instance_type",
        "service_status",
        "labs_count",
        "labs",
        "last_polled_at",
        *ACTIONS.fields,
        "idle_since",
        "idle_stop_at",
        "muted_until",
    },
    "aws": {*EC2.fields, *CLOUDWATCH.fields, *ACTIONS.fields},
    "cml": {
        *CML.fields,
        *CML_STATS.fields,
        *LICENCE.fields,
        "last_polled_at",
        "last_error",
        "consecutive_failures",
        *ACTIONS.fields,
    },
    "labs": {*LABS.fields, "labs"},
    "history": {*CLOUDWATCH.fields, *SAMPLED_CML_FIGURES, "labs_count"},
    # "actions": the worker's audit entries (fleet/actions writes it with every entry).
    "actions": {"actions"},
    # Its pause counts come from the audit entries; "alerts": the worker's open alerts.
    "idle": {
        *ACTIVITY.fields,
        *IDLE_CONTROLS.fields,
        "status",
        "running_since",
        "actions",
        "alerts",
    },
}


def event_name(worker_pk: int, fragment: str) -> str:
    """The SSE event (and `sse-swap` value) that carries one fragment of one worker."""
    return f"worker-{worker_pk}-{fragment}"


def fragments_for(fields: Iterable[str]) -> set[str]:
    """The fragments that show any of these changed fields. A field no fragment claims (or a
    change that names no fields) re-renders them all: better a wasted render than a stale page."""
    fields = set(fields)
    claimed = {name for shown in FRAGMENT_FIELDS.values() for name in shown}
    if not fields or fields - claimed:
        return set(WORKER_FRAGMENTS)
    return {fragment for fragment, shown in FRAGMENT_FIELDS.items() if fields & shown}


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
