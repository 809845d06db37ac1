"""Samples: one worker's figures at each cycle, for the history charts."""

from django.db import models

from fleet.models.workers import Worker

# The Worker's CML figures a sample is made of (besides CloudWatch's and the labs count).
SAMPLED_CML_FIGURES = (
    "cml_cpu_percent",
    "cml_memory_used",
    "cml_memory_total",
    "cml_disk_used",
    "cml_disk_total",
    "nodes_running",
)


class Sample(models.Model):
    """One worker's vital signs at one cycle, for the history charts (kept HISTORY_DAYS)."""

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="samples")
    taken_at = models.DateTimeField()
    cpu_percent = models.FloatField(null=True)
    memory_percent = models.FloatField(null=True)
    disk_percent = models.FloatField(null=True)
    nodes_running = models.PositiveIntegerField(null=True)
    labs_count = models.PositiveIntegerField(null=True)

    class Meta:
        ordering = ["worker", "taken_at"]
        # By worker for a worker's charts; by time alone for the fleet chart and the prune.
        indexes = [models.Index(fields=["worker", "taken_at"]), models.Index(fields=["taken_at"])]

    def __str__(self) -> str:
        return f"{self.worker_id} at {self.taken_at:%Y-%m-%d %H:%M}"

    @classmethod
    def of(cls, worker: Worker, taken_at) -> "Sample":
        """A sample of the worker's current state: CloudWatch figures where the agent reports
        them, else CML's own."""
        return cls(
            worker_id=worker.pk,
            taken_at=taken_at,
            cpu_percent=_first(worker.cpu_percent, worker.cml_cpu_percent),
            memory_percent=_first(worker.memory_percent, worker.cml_memory_percent),
            disk_percent=_first(worker.disk_percent, worker.cml_disk_percent),
            nodes_running=worker.nodes_running,
            labs_count=worker.labs_count,
        )


def _first(*values: float | None) -> float | None:
    return next((value for value in values if value is not None), None)
