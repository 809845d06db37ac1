"""The worker list as CSV, safe to open in a spreadsheet."""

import csv
from collections.abc import Iterable
from io import StringIO

from fleet.models import Worker

COLUMNS = [
    ("name", "name"),
    ("instance_id", "instance_id"),
    ("region", "region"),
    ("status", "status"),
    ("instance_type", "instance_type"),
    ("public_ip", "public_ip"),
    ("private_ip", "private_ip"),
    ("cpu_percent", "cpu_percent"),
    ("memory_percent", "memory_percent"),
    ("disk_percent", "disk_percent"),
    ("cml_service", "service_status"),
    ("cml_version", "cml_version"),
    ("licence", "license_state"),
    ("nodes_running", "nodes_running"),
    ("labs", "labs_count"),
    ("last_polled_at", "last_polled_at"),
    ("last_error", "last_error"),
]


def workers_csv(workers: Iterable[Worker]) -> str:
    out = StringIO()
    writer = csv.writer(out)
    writer.writerow([header for header, _ in COLUMNS])
    for worker in workers:
        writer.writerow([_cell(getattr(worker, name)) for _, name in COLUMNS])
    return out.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    # Names and errors come from EC2 tags and remote servers: never let a spreadsheet run them.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
