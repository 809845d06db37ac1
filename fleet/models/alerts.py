"""Alerts: what is wrong (an open Alert per kind and worker, or the fleet), the channels people
are told through (Apprise URLs, sealed at rest), and the outbox of notifications that records
each delivery, so that none is lost or sent twice however many processes run."""

from urllib.parse import urlsplit

from cryptography.fernet import InvalidToken
from django.db import models
from django.utils import timezone

from fleet.models.workers import Worker
from fleet.secrets import fernet

SEALED_FOR = "alert-channels"


class AlertKind(models.TextChoices):
    WORKER_DOWN = "worker_down", "worker down"
    CML_UNAVAILABLE = "cml_unavailable", "CML unavailable"
    LICENCE = "licence", "licence"
    IDLE_WARNING = "idle_warning", "idle warning"
    AUTO_PAUSE = "auto_pause", "auto-pause"
    COLLECTION = "collection", "collection failing"


# Kinds about one worker; the others are about the fleet as a whole.
WORKER_KINDS = (
    AlertKind.WORKER_DOWN,
    AlertKind.CML_UNAVAILABLE,
    AlertKind.LICENCE,
    AlertKind.IDLE_WARNING,
    AlertKind.AUTO_PAUSE,
)
FLEET_KINDS = (AlertKind.COLLECTION,)


def alert_key(kind: str, worker_id: int | None) -> str:
    """The identity of "this problem": one open alert per key ("licence:42", "collection:fleet")."""
    return f"{kind}:{'fleet' if worker_id is None else worker_id}"


def masked_url(url: str) -> str:
    """What people see of an Apprise URL: its scheme only (the rest may hold tokens)."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    return f"{scheme}://•••" if scheme else "•••"


class AlertChannel(models.Model):
    """Where alerts go: an Apprise URL (Slack, email, JSON webhook ...), the kinds it takes
    (none listed: every kind) and optionally only workers with one tag. The URL holds secrets:
    it is stored sealed (Fernet under SECRET_KEY) and shown masked."""

    name = models.CharField(max_length=100, unique=True)
    url_sealed = models.TextField(editable=False, default="")
    kinds = models.JSONField(
        default=list, blank=True, help_text="Alert kinds sent here; none chosen means every kind."
    )
    worker_tag = models.CharField(
        max_length=255,
        blank=True,
        help_text="KEY=VALUE: only alerts about workers with this EC2 tag (fleet alerts always "
        "go). Empty: every worker.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def url(self) -> str:
        """The Apprise URL, or "" when it cannot be opened (SECRET_KEY changed: enter it again)."""
        if not self.url_sealed:
            return ""
        try:
            return fernet(SEALED_FOR).decrypt(self.url_sealed.encode()).decode()
        except InvalidToken:
            return ""

    @url.setter
    def url(self, value: str) -> None:
        self.url_sealed = fernet(SEALED_FOR).encrypt(value.encode()).decode()

    @property
    def masked_url(self) -> str:
        return masked_url(self.url) if self.url_sealed else ""

    def takes(self, kind: str, worker: Worker | None) -> bool:
        """Whether an alert of this kind about this worker (None: the fleet) goes here."""
        if not self.enabled or (self.kinds and kind not in self.kinds):
            return False
        if worker is None or not self.worker_tag:
            return True
        key, _, value = self.worker_tag.partition("=")
        return isinstance(worker.tags, dict) and worker.tags.get(key.strip()) == value.strip()


class AlertQuerySet(models.QuerySet):
    def open(self) -> "AlertQuerySet":
        return self.filter(resolved_at__isnull=True)


class Alert(models.Model):
    """One occurrence of a problem, from when it was seen until it went away. At most one is
    open per key (kind and worker, or the fleet): a partial unique constraint, so no process
    can open a second."""

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    key = models.CharField(max_length=64, help_text='Kind and subject, e.g. "licence:42".')
    worker = models.ForeignKey(
        Worker, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    message = models.TextField()
    opened_at = models.DateTimeField(default=timezone.now, db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    recovery_message = models.TextField(blank=True)

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_alert_per_key",
            )
        ]

    def __str__(self) -> str:
        return self.message


class NotificationEvent(models.TextChoices):
    OPENED = "opened"
    RESOLVED = "resolved"


class NotificationStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed", "failed (gave up)"
    MUTED = "muted", "muted (not sent)"


class Notification(models.Model):
    """The outbox: one row per alert, channel and event, written with the alert in one
    transaction and then delivered (and retried) by whichever process locks it first."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(
        AlertChannel, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=8, choices=NotificationEvent.choices)
    status = models.CharField(
        max_length=8, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True, help_text="Never holds the channel's URL.")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "channel", "event"], name="one_notification_per_event"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.event} {self.alert} → {self.channel}"


class AlertCursor(models.Model):
    """A single row: the change-log position the alert pass has read up to, and when it last
    looked at every worker. The pass locks it, so passes never overlap."""

    change_id = models.BigIntegerField(default=0)
    swept_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"alerts read the change log up to #{self.change_id}"
