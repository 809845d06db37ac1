"""Labs on a worker's CML server, as the last full cycle listed them."""

from django.db import models

from fleet.models.workers import Worker


class LabState(models.TextChoices):
    DEFINED_ON_CORE = "DEFINED_ON_CORE", "Defined"
    STOPPED = "STOPPED", "Stopped"
    STARTED = "STARTED", "Started"
    QUEUED = "QUEUED", "Queued"
    BOOTED = "BOOTED", "Booted"
    UNKNOWN = "UNKNOWN", "Unknown"


class Lab(models.Model):
    """A lab on a worker's CML server, upserted by each labs cycle; vanished labs are deleted."""

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="labs")
    lab_id = models.CharField("CML lab id", max_length=64)
    title = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    state = models.CharField(max_length=20, choices=LabState.choices, default=LabState.UNKNOWN)
    owner = models.CharField(max_length=150, blank=True)
    node_count = models.PositiveIntegerField(default=0)
    link_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(null=True, blank=True)
    modified = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["worker", "title"]
        constraints = [
            models.UniqueConstraint(fields=["worker", "lab_id"], name="lab_unique_worker_lab_id"),
        ]

    def __str__(self) -> str:
        return self.title or self.lab_id
