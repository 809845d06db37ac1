"""The recent history of workers, for the sparklines in the list and the charts on a worker page.

Charts are server-rendered SVG: no chart library, they read correctly without JavaScript and
swap live with the rest of their fragment.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from fleet.models import Sample, Worker

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
