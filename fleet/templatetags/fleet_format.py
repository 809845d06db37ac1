"""Display helpers for the fleet pages: percentages, byte sizes and status colours."""

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.html import format_html

from fleet.durations import in_words

register = template.Library()

_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


@register.filter
def percent(value: float | None) -> str:
    """`42.3` → `42%`; None → an em dash (no data)."""
    if value is None:
        return "—"
    return f"{value:.0f}%"


@register.filter
def bytesize(value: int | None) -> str:
    """`17179869184` → `16.0 GiB`; None → an em dash."""
    if value is None:
        return "—"
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{value} B"  # pragma: no cover - the loop always returns


@register.filter
def iso(value: str):
    """An ISO 8601 string (as JSON fields keep times) → a datetime; anything else → None."""
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


@register.filter
def span(value) -> str:
    """A timedelta in words (`1 h 20 min`); None → an em dash."""
    return "—" if value is None else in_words(value)


@register.filter
def tone(value: str) -> str:
    """The colour class of a status value: good, warn, bad or idle."""
    return {
        "running": "good",
        "available": "good",
        "ok": "good",
        "licensed": "good",
        "pending": "warn",
        "stopping": "warn",
        "initializing": "warn",
        "evaluation": "warn",
        "insufficient-data": "warn",
        "shutting-down": "warn",
        "unavailable": "bad",
        "error": "bad",
        "impaired": "bad",
        "expired": "bad",
        "out_of_compliance": "bad",
        "terminated": "bad",
        "STARTED": "good",
        "STOPPED": "idle",
    }.get(value, "idle")


@register.inclusion_tag("fleet/partials/sparkline.html")
def sparkline(samples, field: str, label: str, ceiling: float | None = 100.0, large: bool = False):
    """An SVG line of `field` over the last 24 hours, with a text equivalent for screen readers."""
    from fleet.live.history import chart

    size = {"width": 480, "height": 96} if large else {"width": 120, "height": 24}
    return {
        "chart": chart(samples or [], field, ceiling=ceiling, **size),
        "label": label,
        "large": large,
        "unit": "%" if ceiling == 100.0 else "",
    }


@register.filter
def sort_query(state, column: str) -> str:
    """The query string a click on a column header leads to (see ListState.sorted_by)."""
    return state.sorted_by(column)


@register.simple_tag
def window_query(state, window: str) -> str:
    """The list's query string with the fleet chart over `window` (filters and sort kept)."""
    return state.query(window=window, page=state.page)


@register.simple_tag
def ago(moment) -> str:
    """`<time datetime=… data-ago>5 minutes ago</time>`: the server's relative text, which
    static/js/fleet.js keeps true as the page stays open; the exact time on hover."""
    if moment is None:
        return "never"
    return format_html(
        '<time datetime="{}" data-ago title="{} UTC">{} ago</time>',
        moment.isoformat(),
        moment.strftime("%Y-%m-%d %H:%M:%S"),
        short_age(timezone.now() - moment),
    )


def short_age(age: timedelta) -> str:
    """`<1 min`, `5 min`, `2 h 5 min`, `3 d 4 h`: short enough for a table column (the same
    rule as static/js/fleet.js, which keeps it current)."""
    minutes = max(int(age.total_seconds()), 0) // 60
    hours, days = minutes // 60, minutes // 1440
    if minutes < 1:
        return "<1 min"
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h" + (f" {minutes % 60} min" if minutes % 60 else "")
    return f"{days} d" + (f" {hours % 24} h" if hours % 24 else "")
