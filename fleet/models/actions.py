"""The audit log of operator actions, and the pending state of a long action on a worker."""

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from fleet.models.workers import Worker


class ActionName(models.TextChoices):
    START_WORKER = "start_worker", "start worker"
    STOP_WORKER = "stop_worker", "stop worker"
    TERMINATE_WORKER = "terminate_worker", "terminate worker"
    START_LAB = "start_lab", "start lab"
    STOP_LAB = "stop_lab", "stop lab"
    WIPE_LAB = "wipe_lab", "wipe lab"
    DELETE_LAB = "delete_lab", "delete lab"
    DOWNLOAD_LAB = "download_lab", "download lab"
    IMPORT_LAB = "import_lab", "import lab"
    REGISTER_LICENCE = "register_licence", "register licence"
    DEREGISTER_LICENCE = "deregister_licence", "deregister licence"
    IMPORT_WORKERS = "import_workers", "import workers"
    REFRESH_WORKER = "refresh_worker", "refresh"  # its permission is on Worker
    SNOOZE_WORKER = "snooze_worker", "snooze auto-pause"
    SET_AUTO_PAUSE = "set_auto_pause", "set auto-pause"
    MUTE_WORKER = "mute_worker", "mute alerts"


class ActionOutcome(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    NOOP = "noop", "nothing to do"
    FAILED = "failed"


class ActionEntryQuerySet(models.QuerySet):
    def matching(
        self, user: str = "", worker: str = "", action: str = "", outcome: str = ""
    ) -> "ActionEntryQuerySet":
        """The audit page's and the API's filters: a user name, a worker (its id, or words of
        the target), an action and an outcome; unknown actions and outcomes filter nothing."""
        entries = self
        user, worker = user.replace("\x00", ""), worker.replace("\x00", "")  # PostgreSQL: no NUL
        if user:
            entries = entries.filter(username=user)
        if worker.isdigit():
            entries = entries.filter(worker_id=int(worker))
        elif worker:
            entries = entries.filter(target__icontains=worker)
        if action in ActionName.values:
            entries = entries.filter(action=action)
        if outcome in ActionOutcome.values:
            entries = entries.filter(outcome=outcome)
        return entries

    def pending_for(self, worker_id: int) -> "ActionEntry | None":
        return self.filter(worker_id=worker_id, outcome=ActionOutcome.PENDING).first()


class ActionEntry(models.Model):
    """The audit log: one row per action taken from the pages, commands or tasks; who, what,
    on which target, when, and how it ended. Written in the transaction of the change it makes.
    Its Meta holds the permission of each action (granted to roles in fleet/roles.py)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    username = models.CharField(max_length=150, blank=True, help_text="Kept if the user goes.")
    action = models.CharField(max_length=24, choices=ActionName.choices)
    worker = models.ForeignKey(
        Worker, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )
    target = models.CharField(max_length=255, help_text="What was acted on, in words.")
    lab_id = models.CharField("CML lab id", max_length=64, blank=True)
    outcome = models.CharField(
        max_length=12, choices=ActionOutcome.choices, default=ActionOutcome.PENDING
    )
    reason = models.CharField(
        max_length=32, blank=True, help_text='Why the system acted, e.g. "idle" for auto-pause.'
    )
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ActionEntryQuerySet.as_manager()

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit entries"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["worker", "-started_at"])]
        permissions = [
            ("start_worker", "Can start workers"),
            ("stop_worker", "Can stop workers"),
            ("terminate_worker", "Can terminate workers"),
            ("start_lab", "Can start labs"),
            ("stop_lab", "Can stop labs"),
            ("wipe_lab", "Can wipe labs"),
            ("delete_lab", "Can delete labs"),
            ("download_lab", "Can download labs"),
            ("import_lab", "Can import labs"),
            ("register_licence", "Can register licences"),
            ("deregister_licence", "Can deregister licences"),
            ("import_workers", "Can import workers from EC2"),
            ("snooze_worker", "Can snooze a worker's auto-pause"),
            ("set_auto_pause", "Can turn a worker's auto-pause on or off"),
            ("mute_worker", "Can mute a worker's alerts"),
        ]

    def __str__(self) -> str:
        return f"{self.username or 'system'} {self.get_action_display()} {self.target}"

    @property
    def duration(self) -> timedelta | None:
        return None if self.finished_at is None else self.finished_at - self.started_at
