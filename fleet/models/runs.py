"""Collection runs: one row per cycle, with what it saw, changed and failed."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

OVERDUE_GRACE_SECONDS = 120


def overdue_after() -> timedelta:
    """How old the last fleet-wide success may be before collection counts as overdue (/healthz
    and the collection alert): twice the interval plus a grace period."""
    return timedelta(seconds=2 * settings.POLL_INTERVAL_SECONDS + OVERDUE_GRACE_SECONDS)


class RunKind(models.TextChoices):
    METRICS = "metrics", "Metrics only"
    FULL = "full", "Full (labs and licence too)"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule"
    REFRESH = "refresh", "Refresh button"
    COMMAND = "command", "Management command"


class RunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped", "Skipped (another cycle was running)"


class RunScope(models.TextChoices):
    FLEET = "fleet", "Whole fleet"
    WORKERS = "workers", "Chosen workers"


class CollectionRunQuerySet(models.QuerySet):
    def close_stale(self, older_than: timedelta, message: str) -> int:
        """Mark as failed, in one UPDATE, the runs still "running" that started longer than
        `older_than` ago: the process that ran them was killed or lost its database and never
        said so. `finished_at` stays empty (nobody knows when they stopped). Returns how many."""
        return self.filter(
            status=RunStatus.RUNNING, started_at__lt=timezone.now() - older_than
        ).update(status=RunStatus.FAILED, message=message)

    def fleet_wide(self) -> "CollectionRunQuerySet":
        """Cycles over the whole fleet: not one worker's Refresh or `refresh_workers PK`."""
        return self.filter(scope=RunScope.FLEET)

    def latest_fleet_wide(self) -> "CollectionRun | None":
        """The newest cycle over the whole fleet that was not skipped (running or finished)."""
        return self.fleet_wide().exclude(status=RunStatus.SKIPPED).order_by("-started_at").first()

    def last_fleet_success(self) -> "CollectionRun | None":
        """The newest fleet-wide cycle that succeeded: what `/healthz` judges the collector by."""
        return (
            self.fleet_wide()
            .filter(status=RunStatus.SUCCEEDED)
            .order_by("-finished_at")
            .only("finished_at")
            .first()
        )


class CollectionRun(models.Model):
    """One collection cycle: when, what it saw, what changed, what failed."""

    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.METRICS)
    trigger = models.CharField(
        max_length=16, choices=RunTrigger.choices, default=RunTrigger.SCHEDULE
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    scope = models.CharField(
        max_length=8,
        choices=RunScope.choices,
        default=RunScope.FLEET,
        help_text="Whether the cycle covered the whole fleet or only chosen workers.",
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    workers_total = models.PositiveIntegerField(default=0, help_text="Workers to observe.")
    workers_done = models.PositiveIntegerField(default=0, help_text="Observed so far.")
    workers_seen = models.PositiveIntegerField(default=0)
    workers_changed = models.PositiveIntegerField(default=0)
    workers_failed = models.PositiveIntegerField(default=0)
    aws_calls = models.PositiveIntegerField("AWS API calls", default=0)
    errors = models.JSONField(
        default=dict, blank=True, help_text="Per-worker errors, keyed by worker id."
    )
    message = models.TextField(blank=True, help_text="Why the whole run failed or was skipped.")

    objects = CollectionRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["kind", "status", "-started_at"]),
            models.Index(fields=["scope", "status", "-finished_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} run {self.started_at:%Y-%m-%d %H:%M:%S}"

    def summary(self) -> str:
        """One line for logs, the task result and `manage.py refresh_workers`."""
        if self.status == RunStatus.SKIPPED:
            return f"{self.kind} run skipped: {self.message}"
        seconds = self.duration.total_seconds() if self.duration else 0.0
        text = (
            f"{self.kind} run {self.status}: seen {self.workers_seen}, changed "
            f"{self.workers_changed}, failed {self.workers_failed}, {seconds:.2f} s, "
            f"{self.aws_calls} AWS calls"
        )
        return f"{text}; {self.message}" if self.message else text

    @property
    def progress_percent(self) -> int:
        return round(100 * self.workers_done / self.workers_total) if self.workers_total else 0

    @property
    def duration(self) -> timedelta | None:
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class ShardStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CollectionShard(models.Model):
    """One part of a large cycle: the workers of one region, at most COLLECT_SHARD_SIZE of
    them, collected by whichever cluster process claims it first. Its run adds up the counts."""

    run = models.ForeignKey(CollectionRun, on_delete=models.CASCADE, related_name="shards")
    number = models.PositiveIntegerField()
    region = models.CharField(max_length=32)
    worker_ids = models.JSONField(default=list)
    status = models.CharField(
        max_length=10, choices=ShardStatus.choices, default=ShardStatus.PENDING
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="shard_unique_run_number")
        ]

    def __str__(self) -> str:
        return f"shard {self.number} of run {self.run_id} ({self.region}, {len(self.worker_ids)})"
