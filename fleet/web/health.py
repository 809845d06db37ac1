"""What `/healthz` reports: can we reach the database, and is collection keeping up?"""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from fleet.models import CollectionRun, RunStatus

GRACE_SECONDS = 120


def fleet_health() -> tuple[bool, dict[str, Any]]:
    """Return (healthy, report). Unhealthy when the database is unreachable or the last
    successful metrics cycle is older than twice the interval plus a grace period."""
    try:
        last = (
            CollectionRun.objects.filter(status=RunStatus.SUCCEEDED)
            .order_by("-finished_at")
            .only("finished_at")
            .first()
        )
    except DatabaseError as error:
        return False, {"database": "unreachable", "error": str(error).strip()}

    limit = timedelta(seconds=2 * settings.POLL_INTERVAL_SECONDS + GRACE_SECONDS)
    report: dict[str, Any] = {
        "database": "ok",
        "poll_interval_seconds": settings.POLL_INTERVAL_SECONDS,
        "last_cycle": None,
    }
    if last is None:
        report["last_cycle"] = {"finished_at": None, "age_seconds": None, "overdue": True}
        return False, report
    age = timezone.now() - last.finished_at
    overdue = age > limit
    report["last_cycle"] = {
        "finished_at": last.finished_at.isoformat(),
        "age_seconds": int(age.total_seconds()),
        "overdue": overdue,
    }
    return not overdue, report
