"""How many live streams each web process holds, reported by its change feed, so that
/metrics counts them from the database whatever process it runs in."""

import os
import socket
from datetime import timedelta

from django.db import models
from django.utils import timezone

REPORT_SECONDS = 15  # each feed reports this often
STALE_AFTER = timedelta(seconds=3 * REPORT_SECONDS)  # a process silent longer is gone


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


class LiveProcessQuerySet(models.QuerySet):
    def report(self, name: str, streams: int) -> None:
        """Upsert this process's count, and drop processes long gone."""
        now = timezone.now()
        self.update_or_create(name=name, defaults={"streams": streams, "seen_at": now})
        self.filter(seen_at__lt=now - 10 * STALE_AFTER).delete()

    def open_streams(self) -> int:
        """Streams open in the processes heard from lately."""
        recent = self.filter(seen_at__gte=timezone.now() - STALE_AFTER)
        return recent.aggregate(total=models.Sum("streams"))["total"] or 0


class LiveProcess(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="host:pid")
    streams = models.PositiveIntegerField(default=0)
    seen_at = models.DateTimeField(default=timezone.now)

    objects = LiveProcessQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name}: {self.streams} streams"
