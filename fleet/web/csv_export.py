"""The worker list as CSV, safe to open in a spreadsheet."""

import csv
from collections.abc import Iterable
from io import StringIO

from fleet.models import Worker
from fleet.models.field_groups import OBSERVED, SET_BY_PEOPLE

# Every field of every group but the structured ones (tags, compute hosts, recent activity),
# named as stored.
COLUMNS = [
    name
    for group in (*SET_BY_PEOPLE, *OBSERVED)
    for name in group.fields
    if name not in {"tags", "compute_hosts", "recent_activity"}
]


def workers_csv(workers: Iterable[Worker]) -> str:
    out = StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for worker in workers:
        writer.writerow([_cell(getattr(worker, name)) for name in COLUMNS])
    return out.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    # Names and errors come from EC2 tags and remote servers: never let a spreadsheet run them.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
