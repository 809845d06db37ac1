"""Pure reading of CML's telemetry events: which of them are people using the server.

CML answers its whole history on every call, so only events newer than the newest one read
before are looked at. Relevant: lab and node operations by anyone, and `user_activity` by any
user other than the account this product signs in with (its own polling is recorded there and
must never keep a worker awake). No Django here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

LAB_AND_NODE_OPERATIONS = frozenset(
    {
        "start_lab",
        "stop_lab",
        "wipe_lab",
        "import_lab",
        "export_lab",
        "start_node",
        "stop_node",
        "queue_node",
        "boot_node",
    }
)
USER_ACTIVITY = "user_activity"
RECENT_EVENTS = 10  # kept per worker, newest first
TEXT_MAX = 64  # a stored event's category, user or lab is cut to this
FUTURE_SLACK = timedelta(minutes=5)  # CML's clock may run a little ahead of ours


@dataclass
class ActivityRead:
    """What one read of the history found: the newest relevant events (newest first), the
    newest timestamp of any event (the next read skips up to it), and notes on unusable ones."""

    relevant: list[dict[str, str]] = field(default_factory=list)
    newest_seen: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def last_activity(self) -> datetime | None:
        return parse_timestamp(self.relevant[0]["at"]) if self.relevant else None


def read_activity(
    events: list[Any],
    *,
    own_user_id: str,
    own_username: str,
    seen_until: datetime | None,
    now: datetime,
) -> ActivityRead:
    """The relevant events among `events` from the second of `seen_until` on. CML's stamps mix
    precisions (with and without a fraction), so the last second read is read again and
    `merge_recent` drops what was kept already."""
    cutoff = seen_until.replace(microsecond=0) if seen_until is not None else None
    read = ActivityRead()
    unreadable = future = 0
    fresh: list[tuple[datetime, dict[str, str]]] = []
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("category"), str):
            unreadable += 1
            continue
        moment = parse_timestamp(event.get("timestamp"))
        if moment is None:
            unreadable += 1
            continue
        if moment > now + FUTURE_SLACK:
            future += 1
            moment = now
        if read.newest_seen is None or moment > read.newest_seen:
            read.newest_seen = moment
        if cutoff is not None and moment < cutoff:
            continue
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        user = _user(event, data)
        category = event["category"]
        if category in LAB_AND_NODE_OPERATIONS or (
            category == USER_ACTIVITY and user and user not in (own_user_id, own_username)
        ):
            fresh.append((moment, _summary(moment, category, user, data)))
    fresh.sort(key=lambda item: item[0], reverse=True)
    read.relevant = [summary for _, summary in fresh[:RECENT_EVENTS]]
    if unreadable:
        read.notes.append(
            f"CML telemetry: {unreadable} events without a category or a readable timestamp, "
            "skipped"
        )
    if future:
        read.notes.append(f"CML telemetry: {future} events dated in the future, read as now")
    return read


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 timestamp, with or without a fraction, `Z` or an offset (none means UTC),
    or seconds since the epoch; None when it is none of these."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if not isinstance(value, str) or not 10 <= len(value) <= 40:
            return None
        text = value.strip().replace(" ", "T", 1)
        head, dot, tail = text.partition(".")
        if dot:  # more than the 6 fraction digits Python reads: keep microseconds
            digits = len(tail) - len(tail.lstrip("0123456789"))
            text = head + "." + tail[: min(digits, 6)] + tail[digits:]
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def merge_recent(new: list[dict[str, str]], old: Any) -> list[dict[str, str]]:
    """The newest RECENT_EVENTS of the new relevant events and those kept before, each once."""
    kept = [event for event in old if isinstance(event, dict)] if isinstance(old, list) else []
    fresh = [event for event in new if event not in kept]
    return sorted(fresh + kept, key=lambda event: str(event.get("at", "")), reverse=True)[
        :RECENT_EVENTS
    ]


def _user(event: dict, data: dict) -> str:
    for source in (data, event):
        for key in ("user_id", "username", "user"):
            if isinstance(source.get(key), str) and source[key]:
                return source[key]
    return ""


def _summary(moment: datetime, category: str, user: str, data: dict) -> dict[str, str]:
    lab = data.get("lab_id") if isinstance(data.get("lab_id"), str) else ""
    return {
        "at": moment.isoformat(),
        "category": _clean(category),
        "user": _clean(user),
        "lab": _clean(lab),
    }


def _clean(text: str) -> str:
    """Fit for a JSON column on PostgreSQL: no NUL, no lone surrogates, at most TEXT_MAX."""
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text[:TEXT_MAX]
