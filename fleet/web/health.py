"""What `/healthz` reports: can we reach the database, and is collection keeping up?"""

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from fleet.models import CollectionRun
from fleet.models.runs import overdue_after

log = logging.getLogger(__name__)


def fleet_health(now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Return (healthy, report). Unhealthy when the database is unreachable or the last
    successful fleet-wide cycle is older than `overdue_after()`; one worker's Refresh does not
    count, so a dead scheduler cannot look alive. A database error is logged, never echoed:
    the endpoint needs no login and the message can name hosts and users."""
    try:
        last = CollectionRun.objects.last_fleet_success()
    except DatabaseError:
        log.exception("healthz: the database is unreachable")
        return False, {"database": "unreachable"}

    report: dict[str, Any] = {
        "database": "ok",
        "poll_interval_seconds": settings.POLL_INTERVAL_SECONDS,
        "last_cycle": None,
    }
    if last is None:
        report["last_cycle"] = {"finished_at": None, "age_seconds": None, "overdue": True}
        return False, report
    age = (now or timezone.now()) - last.finished_at
    overdue = age > overdue_after()
    report["last_cycle"] = {
        "finished_at": last.finished_at.isoformat(),
        "age_seconds": int(age.total_seconds()),
        "overdue": overdue,
    }
    return not overdue, report
