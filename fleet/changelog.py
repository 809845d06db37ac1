"""The writing side of the change log: every state change records itself here, in its own
transaction, and on PostgreSQL wakes the web processes' change feeds with a NOTIFY at commit."""

from collections.abc import Iterable

from django.db import connection
from django.db.models import Max

from fleet.models import Change, ChangeKind

NOTIFY_CHANNEL = "fleet_changes"


def record_changes(entries: Iterable[tuple[int, str, list[str]]]) -> list[Change]:
    """Log (worker id, kind, changed field names) tuples in one insert; call inside the
    transaction that makes the change, so the log and the data commit or roll back together."""
    rows = [Change(worker_id=pk, kind=kind, fields=sorted(fields)) for pk, kind, fields in entries]
    if not rows:
        return []
    Change.objects.bulk_create(rows)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
    return rows


def record_change(worker_id: int, kind: str = ChangeKind.UPDATED, fields=()) -> None:
    record_changes([(worker_id, kind, list(fields))])


def log_position() -> int:
    """The id of the newest change-log row: a page rendered now is current up to here, and its
    stream starts from here, so nothing committed in between is missed."""
    return Change.objects.aggregate(top=Max("id"))["top"] or 0
