"""The swappable fragments of the pages: one partial template each, rendered the same way for
the full page, the Refresh button's answer and the live updates.

Fragments never depend on who is looking (actions a user may not take are hidden by CSS and
refused by the server), so the live feed renders each one once for every browser.
"""

from collections.abc import Iterable

from django.http import HttpRequest
from django.template.loader import render_to_string

from fleet.live.charts import WINDOWS
from fleet.live.history import attach_history, fleet_charts, worker_charts
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

# The charts of a worker page, one fragment per window (`history-24h`): a page shows one window
# and follows that fragment only, so the feed renders just the windows someone watches.
HISTORY_FRAGMENTS = {f"history-{key}": key for key in WINDOWS}
WORKER_FRAGMENTS = {
    "row": "fleet/partials/worker_row.html",
    "aws": "fleet/partials/worker_aws.html",
    "cml": "fleet/partials/worker_cml.html",
    "labs": "fleet/partials/worker_labs.html",
    **{name: "fleet/partials/worker_history.html" for name in HISTORY_FRAGMENTS},
    "actions": "fleet/partials/worker_actions.html",
    "idle": "fleet/partials/worker_idle.html",
}
NEEDS_HISTORY = {"row"}  # the 24-hour sparkline, attached to many workers in one query

# The worker fields (and "labs", the worker's lab rows) each fragment shows: a change to a
# field re-renders exactly these fragments. The history charts plot samples, which every cycle
# adds: they follow the cycle's end (a fleet change naming "samples", see fleet.live.feed), and
# the worker's audit entries, marked on their time axis.
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
    **{name: {"actions"} for name in HISTORY_FRAGMENTS},
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
FLEET_CHART_TEMPLATE = "fleet/partials/fleet_chart.html"


def event_name(worker_pk: int, fragment: str) -> str:
    """The SSE event (and `sse-swap` value) that carries one fragment of one worker."""
    return f"worker-{worker_pk}-{fragment}"


def parse_event_name(name: str) -> tuple[int, str] | None:
    """(worker pk, fragment) of a worker event name; None for any other name."""
    prefix, _, rest = name.partition("-")
    pk, _, fragment = rest.partition("-")
    if prefix != "worker" or not pk.isdigit() or fragment not in WORKER_FRAGMENTS:
        return None
    return int(pk), fragment


def fleet_chart_event(window: str) -> str:
    """The SSE event (and group) of the fleet chart over one window."""
    return f"fleet-chart-{window}"


def render_fleet_chart(window: str) -> str:
    return render_to_string(FLEET_CHART_TEMPLATE, fleet_charts(window))


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
    context = {"worker": worker, "oob": oob, "fragment": fragment}
    if fragment in HISTORY_FRAGMENTS:
        context.update(worker_charts(worker, HISTORY_FRAGMENTS[fragment]))
    return render_to_string(WORKER_FRAGMENTS[fragment], context, request=request)


def render_worker_fragments(worker: Worker, request: HttpRequest | None = None) -> str:
    """Every fragment of a worker as out-of-band swaps: the page swaps the ones it shows. The
    charts are left out: the page's window is its own, and the new sample reaches them live."""
    return "".join(
        render_worker_fragment(worker, name, request, oob=True)
        for name in WORKER_FRAGMENTS
        if name not in HISTORY_FRAGMENTS
    )
