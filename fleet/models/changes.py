"""The change log (a transactional outbox) and its writer: every state change records itself
in the transaction that makes it. The writer lives beside the model because the collection,
the admin and the commands all write it; docs/architecture.md has the rest."""

from collections.abc import Iterable

from django.db import connection, models
from django.db.models import Max
from django.utils import timezone

NOTIFY_CHANNEL = "fleet_changes"


class ChangeKind(models.TextChoices):
    UPDATED = "updated"
    CREATED = "created"
    DELETED = "deleted"
    FLEET = "fleet", "Fleet-wide (a cycle's progress)"


class Change(models.Model):
    """One committed change: to a worker (created, updated, deleted) or to the fleet as a whole.
    `worker_id` is a plain column, not a foreign key, so the deletion of a worker is logged too;
    it is empty for fleet-wide changes."""

    worker_id = models.BigIntegerField(null=True, blank=True)
    kind = models.CharField(max_length=8, choices=ChangeKind.choices, default=ChangeKind.UPDATED)
    fields = models.JSONField(default=list, help_text="Names of the fields that changed.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        target = "fleet" if self.kind == ChangeKind.FLEET else f"worker {self.worker_id}"
        return f"#{self.pk} {target} {self.kind}"


def record_changes(entries: Iterable[tuple[int | None, str, list[str]]]) -> list[Change]:
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


def record_fleet_change() -> None:
    """A fleet-wide change: a cycle's progress or end (the progress line and stat cards)."""
    record_changes([(None, ChangeKind.FLEET, ["run"])])


def log_position() -> int:
    """The id of the newest change-log row: a page rendered now is current up to here, and its
    stream starts from here, so nothing committed in between is missed."""
    return Change.objects.aggregate(top=Max("id"))["top"] or 0
