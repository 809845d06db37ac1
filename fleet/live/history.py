"""The recent history of workers, for the sparklines in the list and the charts on a worker page.

Charts are server-rendered SVG: no chart library, they read correctly without JavaScript and
swap live with the rest of their fragment.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Min
from django.utils import timezone

from fleet.live.charts import (
    WINDOW_LABELS,
    WINDOWS,
    Event,
    build_chart,
    default_window,
    parse_window,
)
from fleet.models import ActionEntry, Sample, Worker
from fleet.models.actions import ActionName, ActionOutcome

WINDOW = timedelta(hours=24)


def attach_history(workers: Iterable[Worker], window: timedelta = WINDOW) -> None:
    """Set `worker.history` (samples of the last `window`, oldest first) on every worker, in
    one query whatever their number."""
    by_pk = {worker.pk: worker for worker in workers}
    for worker in by_pk.values():
        worker.history = []
    since = timezone.now() - window
    samples = Sample.objects.filter(worker_id__in=by_pk, taken_at__gte=since).order_by(
        "worker_id", "taken_at"
    )
    for sample in samples:
        by_pk[sample.worker_id].history.append(sample)


@dataclass(frozen=True)
class Chart:
    """One series drawn as an SVG polyline in a `width` x `height` box."""

    points: str  # "x,y x,y ..." for <polyline points>; "" when there is nothing to draw
    last: float | None
    low: float | None
    high: float | None
    width: int
    height: int


def chart(
    samples: Sequence[Sample],
    field: str,
    *,
    width: int = 120,
    height: int = 24,
    ceiling: float | None = 100.0,
    window: timedelta = WINDOW,
    now: datetime | None = None,
) -> Chart:
    """Place `field` of each sample by time across the window; y from 0 to `ceiling` (or the
    series' own maximum when None). Samples without a value leave no point."""
    now = now or timezone.now()
    start = now - window
    values = [(s.taken_at, getattr(s, field)) for s in samples if getattr(s, field) is not None]
    if not values:
        return Chart("", None, None, None, width, height)
    numbers = [value for _, value in values]
    top = ceiling if ceiling is not None else max(max(numbers), 1)
    span = window.total_seconds()
    points = []
    for taken_at, value in values:
        x = max(0.0, min(1.0, (taken_at - start).total_seconds() / span)) * width
        y = height - max(0.0, min(1.0, value / top)) * height
        points.append(f"{x:.1f},{y:.1f}")
    return Chart(" ".join(points), numbers[-1], min(numbers), max(numbers), width, height)


@dataclass(frozen=True)
class Series:
    """One chart of a page: which figure, its caption and its scale."""

    field: str
    caption: str
    ceiling: float | None = 100.0
    unit: str = "%"


WORKER_SERIES = (
    Series("cpu_percent", "CPU %"),
    Series("memory_percent", "Memory %"),
    Series("disk_percent", "Disk %"),
    Series("nodes_running", "Nodes running", None, ""),
    Series("labs_count", "Labs", None, ""),
)
FLEET_SERIES = (
    Series("cpu_percent", "Fleet CPU %, average of the workers reporting"),
    Series("memory_percent", "Fleet memory %, average of the workers reporting"),
)
# Actions that change nothing are not marked on the charts.
UNMARKED_ACTIONS = {ActionName.REFRESH_WORKER, ActionName.DOWNLOAD_LAB}
ACTION_TONES = {
    ActionName.START_WORKER: "good",
    ActionName.STOP_WORKER: "warn",
    ActionName.TERMINATE_WORKER: "bad",
}


def max_gap() -> timedelta:
    """Samples further apart than this were not taken in between: the line breaks there."""
    return timedelta(seconds=settings.POLL_INTERVAL_SECONDS * 2.5)


def oldest_sample(worker: Worker | None = None) -> datetime | None:
    """When the oldest kept sample (of one worker, or of the fleet) was taken."""
    samples = Sample.objects.all() if worker is None else Sample.objects.filter(worker=worker)
    return samples.aggregate(oldest=Min("taken_at"))["oldest"]


def chart_window(value: str | None, worker: Worker | None = None) -> str:
    """The window asked for in the URL, or the default for this worker (or the fleet);
    ValueError for a window that does not exist."""
    return parse_window(value) or default_window(oldest_sample(worker), timezone.now())


def action_events(worker: Worker, since: datetime) -> list[Event]:
    """The worker's actions since `since`, labelled from their audit entries (so a stop by
    the system reads as such)."""
    entries = (
        ActionEntry.objects.filter(worker=worker, started_at__gte=since)
        .exclude(action__in=UNMARKED_ACTIONS)
        .order_by("started_at")
    )
    return [
        Event(
            entry.started_at,
            f"{entry.get_action_display()} by {entry.username or 'system'}"
            + (
                ""
                if entry.outcome == ActionOutcome.SUCCEEDED
                else f" ({entry.get_outcome_display().lower()})"
            ),
            ACTION_TONES.get(entry.action, "idle"),
        )
        for entry in entries
    ]


def worker_charts(worker: Worker, window: str, now: datetime | None = None) -> dict:
    """The charts of a worker page for one window, with the events marked on them."""
    now = now or timezone.now()
    since = now - WINDOWS[window]
    samples = list(Sample.objects.filter(worker=worker, taken_at__gte=since).order_by("taken_at"))
    events = action_events(worker, since)
    charts = [
        (
            series,
            build_chart(
                [(s.taken_at, getattr(s, series.field)) for s in samples],
                window,
                now=now,
                max_gap=max_gap(),
                ceiling=series.ceiling,
                unit=series.unit,
                events=events,
            ),
        )
        for series in WORKER_SERIES
    ]
    return {**_window_context(window), "charts": charts, "events": events, "count": len(samples)}


def fleet_charts(window: str, now: datetime | None = None) -> dict:
    """The fleet's average CPU and memory per cycle over the window. A cycle's samples share
    their time; a time with fewer than half the most samples seen (one worker's Refresh) is
    left out, so one worker never passes for the fleet."""
    now = now or timezone.now()
    rows = list(
        Sample.objects.filter(taken_at__gte=now - WINDOWS[window])
        .values("taken_at")
        .annotate(
            n=Count("id"), cpu_percent=Avg("cpu_percent"), memory_percent=Avg("memory_percent")
        )
        .order_by("taken_at")
    )
    most = max((row["n"] for row in rows), default=0)
    rows = [row for row in rows if row["n"] * 2 >= most]
    charts = [
        (
            series,
            build_chart(
                [(row["taken_at"], row[series.field]) for row in rows],
                window,
                now=now,
                max_gap=max_gap(),
            ),
        )
        for series in FLEET_SERIES
    ]
    return {**_window_context(window), "charts": charts, "count": len(rows)}


def _window_context(window: str) -> dict:
    return {"window": window, "window_label": WINDOW_LABELS[window], "windows": list(WINDOWS)}
