"""Chart geometry: a time series over a window, drawn as server-rendered SVG.

Pure functions of the points and the clock, so the geometry is tested without a database: lines
break where the series has no value or the samples are further apart than `max_gap` (a stopped
or unpolled worker), long windows are averaged into at most BUCKETS points, the x axis has time
ticks and the y axis value gridlines, and the current, lowest and highest values are marked.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

WINDOWS = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
WINDOW_LABELS = {"1h": "hour", "6h": "6 hours", "24h": "24 hours", "7d": "7 days"}
# The default window is the smallest of these that holds every sample (see default_window).
DEFAULT_CANDIDATES = ("1h", "6h", "24h")
TICK_EVERY = {
    "1h": timedelta(minutes=10),
    "6h": timedelta(hours=1),
    "24h": timedelta(hours=3),
    "7d": timedelta(days=1),
}
BUCKETS = 120  # at most this many points per line; hover targets too

WIDTH, HEIGHT = 480, 180
LEFT, RIGHT, TOP, BOTTOM = 34, WIDTH - 46, 12, HEIGHT - 22  # the plot area inside the box


def parse_window(value: str | None) -> str | None:
    """The window named by `?window=`, None when absent; ValueError says what is allowed."""
    if not value:
        return None
    if value not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}")
    return value


def default_window(oldest: datetime | None, now: datetime) -> str:
    """The smallest window holding every sample there is, at most 24 hours: a fresh install
    (ten minutes of samples) gets the hour, filled enough to read, not a sliver of a day."""
    if oldest is None:
        return DEFAULT_CANDIDATES[0]
    age = now - oldest
    for key in DEFAULT_CANDIDATES:
        if age <= WINDOWS[key]:
            return key
    return DEFAULT_CANDIDATES[-1]


@dataclass(frozen=True)
class Tick:
    at: float  # x for time ticks, y for gridlines
    label: str


@dataclass(frozen=True)
class Mark:
    """A labelled point: the current, lowest or highest value."""

    x: float
    y: float
    label: str
    title: str
    label_x: float = 0.0  # where its text goes: beside the point for the current value,
    label_y: float = 0.0  # above it for the highest, below it for the lowest
    anchor: str = "middle"
    kind: str = "current"  # current, high or low: its class


def _mark(x: float, y: float, label: str, title: str, place: str) -> Mark:
    if place == "current":
        return Mark(x, y, label, title, min(x + 5, WIDTH - 30), y + 4, "start", place)
    if place == "high":
        return Mark(x, y, label, title, x, max(y - 6, TOP), "middle", place)
    return Mark(x, y, label, title, x, min(y + 15, BOTTOM - 2), "middle", place)


@dataclass(frozen=True)
class Hover:
    """A vertical band around one point whose <title> gives its time and value."""

    x: float
    width: float
    title: str


@dataclass(frozen=True)
class Event:
    """Something that happened (an action on the worker) at a time, marked on the axis."""

    at: datetime
    label: str
    tone: str = "idle"  # good, warn, bad or idle: the marker's colour class


@dataclass(frozen=True)
class EventMark:
    x: float
    label: str
    title: str
    tone: str


@dataclass(frozen=True)
class Chart:
    """Everything the SVG template draws; `summary` is its text equivalent."""

    window: str
    lines: list[str] = field(default_factory=list)  # SVG path data, one per unbroken run
    dots: list[tuple[float, float]] = field(default_factory=list)  # runs of a single point
    hovers: list[Hover] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_grid: list[Tick] = field(default_factory=list)
    current: Mark | None = None
    low: Mark | None = None
    high: Mark | None = None
    events: list[EventMark] = field(default_factory=list)
    summary: str = ""
    values: tuple[str, str, str] | None = None  # last, lowest, highest, as text
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM

    @property
    def empty(self) -> bool:
        return not (self.lines or self.dots)

    @property
    def marks(self) -> list[Mark]:
        """The labelled points, the current value last (drawn on top)."""
        return [mark for mark in (self.high, self.low, self.current) if mark]

    @property
    def plot_height(self) -> int:
        return self.bottom - self.top


def build_chart(
    points: Sequence[tuple[datetime, float | None]],
    window: str,
    *,
    now: datetime,
    max_gap: timedelta,
    ceiling: float | None = 100.0,
    unit: str = "%",
    events: Sequence[Event] = (),
) -> Chart:
    """Lay out `points` (time, value; oldest first) over the window ending at `now`.

    y runs from 0 to `ceiling`, or to a round number above the series' maximum when None.
    A value of None, or two samples more than `max_gap` apart, breaks the line: nothing is drawn
    across a time the worker was stopped or not polled.
    """
    span = WINDOWS[window]
    start = now - span
    inside = [(t, v) for t, v in points if start <= t <= now]
    values = [v for _, v in inside if v is not None]
    top_value, step = _y_scale(values, ceiling)
    width_s = span.total_seconds()

    def x_of(t: datetime) -> float:
        return LEFT + (t - start).total_seconds() / width_s * (RIGHT - LEFT)

    def y_of(v: float) -> float:
        return BOTTOM - min(max(v / top_value, 0.0), 1.0) * (BOTTOM - TOP)

    def text(v: float) -> str:
        return f"{v:.0f}{unit}" if unit == "%" or v == int(v) else f"{v:.1f}{unit}"

    runs = _runs(inside, max_gap)
    bucket = span / BUCKETS
    lines, dots, averaged = [], [], []
    for run in runs:
        run_points = _averaged(run, start, bucket)
        averaged.extend(run_points)
        coords = [(x_of(t), y_of(v)) for t, v in run_points]
        if len(coords) == 1:
            dots.append((round(coords[0][0], 1), round(coords[0][1], 1)))
        else:
            lines.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in coords))

    hovers = _hovers(averaged, x_of, max_gap, lambda t, v: f"{_when(t, window)} · {text(v)}")
    x_ticks = [
        Tick(round(x_of(t), 1), _when(t, window, tick=True)) for t in _ticks(start, now, window)
    ]
    y_grid = [Tick(round(y_of(v), 1), text(v)) for v in _frange(0, top_value, step)]
    current = low = high = shown = None
    summary = "no samples in this window"
    if values:
        valued = [(t, v) for t, v in inside if v is not None]
        last_t, last_v = valued[-1]
        low_t, low_v = min(valued, key=lambda p: p[1])
        high_t, high_v = max(valued, key=lambda p: p[1])

        def mark(t: datetime, v: float, words: str, place: str) -> Mark:
            at = _when(t, window)
            return _mark(
                round(x_of(t), 1), round(y_of(v), 1), text(v), f"{words} {text(v)} at {at}", place
            )

        current = mark(last_t, last_v, "last", "current")
        if high_v != low_v:  # a flat line has one value: the current one
            low = mark(low_t, low_v, "lowest", "low")
            high = mark(high_t, high_v, "highest", "high")
        # The current value's label says it already where it is the lowest or highest too.
        low = None if low and low_t == last_t else low
        high = None if high and high_t == last_t else high
        shown = (text(last_v), text(low_v), text(high_v))
        summary = "last {}, lowest {}, highest {}".format(*shown)
    marks = [
        EventMark(round(x_of(e.at), 1), e.label, f"{_when(e.at, window)} {e.label}", e.tone)
        for e in events
        if start <= e.at <= now
    ]
    return Chart(
        window=window,
        lines=lines,
        dots=dots,
        hovers=hovers,
        x_ticks=x_ticks,
        y_grid=y_grid,
        current=current,
        low=low,
        high=high,
        events=marks,
        summary=summary,
        values=shown,
    )


def _runs(points, max_gap: timedelta) -> list[list[tuple[datetime, float]]]:
    """Split into unbroken runs: at a missing value, or where samples are too far apart."""
    runs: list[list[tuple[datetime, float]]] = []
    current: list[tuple[datetime, float]] = []
    for t, v in points:
        if v is None or (current and t - current[-1][0] > max_gap):
            if current:
                runs.append(current)
            current = []
        if v is not None:
            current.append((t, v))
    if current:
        runs.append(current)
    return runs


def _averaged(run, start: datetime, bucket: timedelta) -> list[tuple[datetime, float]]:
    """One point per bucket of the window (mean time, mean value): a week of one-minute samples
    becomes BUCKETS points, and an hour of them stays as it is."""
    out: list[tuple[datetime, float]] = []
    group: list[tuple[datetime, float]] = []
    index = None
    for t, v in run:
        i = int((t - start) / bucket)
        if group and i != index:
            out.append(_mean(group))
            group = []
        index = i
        group.append((t, v))
    if group:
        out.append(_mean(group))
    return out


def _mean(group) -> tuple[datetime, float]:
    first = group[0][0]
    offset = sum(((t - first) for t, _ in group), timedelta()) / len(group)
    return first + offset, sum(v for _, v in group) / len(group)


def _hovers(points, x_of, max_gap: timedelta, title) -> list[Hover]:
    """A band per point reaching halfway to its neighbours (never further than half of
    `max_gap`'s width away), so that the pointer anywhere along the line finds a value."""
    hovers = []
    xs = [x_of(t) for t, _ in points]
    reach = x_of(points[0][0] + max_gap) - xs[0] if points else 0
    for i, (t, v) in enumerate(points):
        x = xs[i]
        left = x - min(reach / 2, (x - xs[i - 1]) / 2 if i else reach / 2)
        right = x + min(reach / 2, (xs[i + 1] - x) / 2 if i + 1 < len(xs) else reach / 2)
        left, right = max(left, LEFT), min(right, RIGHT)
        hovers.append(Hover(round(left, 1), round(max(right - left, 1.0), 1), title(t, v)))
    return hovers


def _y_scale(values: list[float], ceiling: float | None) -> tuple[float, float]:
    """The top of the y axis and its gridline step: 0-100 by 25 for percentages, else a round
    step giving at most four gridlines above zero."""
    if ceiling is not None:
        return ceiling, ceiling / 4
    highest = max(values, default=0) or 1
    magnitude = 10 ** math.floor(math.log10(highest / 4)) if highest >= 4 else 1
    for factor in (1, 2, 5, 10):
        step = factor * magnitude
        if math.ceil(highest / step) <= 4:
            return math.ceil(highest / step) * step, step
    return highest, highest / 4  # pragma: no cover - factor 10 always fits


def _frange(low: float, high: float, step: float) -> list[float]:
    count = round((high - low) / step)
    return [low + i * step for i in range(count + 1)]


def _ticks(start: datetime, now: datetime, window: str) -> list[datetime]:
    """Round local times inside the window: every 10 minutes of an hour, every hour of six,
    every three hours of a day, every midnight of a week."""
    every = TICK_EVERY[window]
    local = timezone.localtime(start)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    steps = math.ceil((local - midnight) / every)
    tick = midnight + steps * every
    ticks = []
    while tick <= now:
        if tick >= start:
            ticks.append(tick)
        tick += every
    return ticks


def _when(t: datetime, window: str, tick: bool = False) -> str:
    local = timezone.localtime(t)
    if window == "7d":
        return local.strftime("%a %d") if tick else local.strftime("%a %d %H:%M")
    return local.strftime("%H:%M")
