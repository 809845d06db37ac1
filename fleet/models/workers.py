"""Workers: EC2 instances running a CML server, with everything last observed about them."""

import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone

INSTANCE_ID_RE = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")


def validate_instance_id(value: str) -> None:
    if not INSTANCE_ID_RE.match(value or ""):
        raise ValidationError(
            "%(value)s is not an EC2 instance id (i- followed by 8 or 17 hex digits).",
            params={"value": value},
            code="invalid_instance_id",
        )


def validate_region(value: str) -> None:
    if value not in settings.AWS_REGIONS:
        raise ValidationError(
            "%(value)s is not one of the configured regions (%(regions)s).",
            params={"value": value, "regions": ", ".join(settings.AWS_REGIONS)},
            code="unknown_region",
        )


def auto_pause_default() -> bool:
    """New workers take AUTO_PAUSE_DEFAULT; a callable, so the setting is read at creation."""
    return settings.AUTO_PAUSE_DEFAULT


validate_endpoint = URLValidator(schemes=["http", "https"], message="Enter an http(s) URL.")


class WorkerStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SHUTTING_DOWN = "shutting-down", "Shutting down"
    TERMINATED = "terminated"
    UNKNOWN = "unknown"


class CheckStatus(models.TextChoices):
    """EC2 system/instance status check results, as DescribeInstanceStatus reports them."""

    OK = "ok"
    IMPAIRED = "impaired"
    INITIALIZING = "initializing"
    INSUFFICIENT_DATA = "insufficient-data", "Insufficient data"
    NOT_APPLICABLE = "not-applicable", "Not applicable"
    UNKNOWN = "unknown"


class ServiceStatus(models.TextChoices):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    ERROR = "error"
    UNKNOWN = "unknown"


class LicenseState(models.TextChoices):
    LICENSED = "licensed"
    EVALUATION = "evaluation"
    OUT_OF_COMPLIANCE = "out_of_compliance", "Out of compliance"
    EXPIRED = "expired"
    UNREGISTERED = "unregistered"
    UNKNOWN = "unknown"


class PendingAction(models.TextChoices):
    """A long action in flight on a worker, shown at once ("stopping…") until it settles."""

    NONE = "", "none"
    START = "start", "starting…"
    STOP = "stop", "stopping…"
    TERMINATE = "terminate", "terminating…"
    REGISTER = "register", "registering licence…"


RUNNING = models.Q(status=WorkerStatus.RUNNING)
# Running, but CML does not answer well or an EC2 status check is failing.
IN_TROUBLE = RUNNING & (
    ~models.Q(service_status=ServiceStatus.AVAILABLE)
    | models.Q(system_check=CheckStatus.IMPAIRED)
    | models.Q(instance_check=CheckStatus.IMPAIRED)
)


IDLE = RUNNING & models.Q(idle_since__isnull=False)


class WorkerQuerySet(models.QuerySet):
    """The list's named filters and the stat cards, asked once here by the list, the title,
    the stat cards and the live feed."""

    def visible(self) -> "WorkerQuerySet":
        """Not terminated: what the list shows unless asked for terminated workers too."""
        return self.exclude(status=WorkerStatus.TERMINATED)

    def in_trouble(self) -> "WorkerQuerySet":
        return self.filter(IN_TROUBLE)

    def idle(self) -> "WorkerQuerySet":
        """Running, with no activity for the idle threshold (set by the idle pass)."""
        return self.filter(IDLE)

    def stats(self) -> dict:
        """The stat cards of the visible workers, in one query: total, running, stopped, CML
        unavailable, average CPU, and how many are in trouble (the page title)."""
        return self.visible().aggregate(
            total=models.Count("pk"),
            running=models.Count("pk", filter=RUNNING),
            stopped=models.Count("pk", filter=models.Q(status=WorkerStatus.STOPPED)),
            cml_unavailable=models.Count(
                "pk", filter=RUNNING & ~models.Q(service_status=ServiceStatus.AVAILABLE)
            ),
            average_cpu=models.Avg("cpu_percent", filter=RUNNING),
            in_trouble=models.Count("pk", filter=IN_TROUBLE),
            idle=models.Count("pk", filter=IDLE),
        )


class Worker(models.Model):
    """One EC2 instance running a CML server, with everything last observed about it.

    `region` and `instance_id` are set by people (admin, `import_workers`); `name` too, until the
    instance has a Name tag. Every other field is observed by the collection and read-only in
    the admin.
    """

    # Identity (set by people).
    name = models.CharField(max_length=255, blank=True, help_text="The EC2 Name tag.")
    region = models.CharField(max_length=32, validators=[validate_region])
    instance_id = models.CharField(max_length=19, validators=[validate_instance_id])
    cml_endpoint = models.CharField(
        "CML endpoint",
        max_length=255,
        blank=True,
        validators=[validate_endpoint],
        help_text="Base URL of the CML API, from CML_ENDPOINT_TEMPLATE while the instance runs.",
    )

    # EC2.
    status = models.CharField(
        max_length=16, choices=WorkerStatus.choices, default=WorkerStatus.UNKNOWN
    )
    system_check = models.CharField(
        max_length=20, choices=CheckStatus.choices, default=CheckStatus.UNKNOWN
    )
    instance_check = models.CharField(
        max_length=20, choices=CheckStatus.choices, default=CheckStatus.UNKNOWN
    )
    instance_type = models.CharField(max_length=32, blank=True)
    ami_id = models.CharField("AMI", max_length=32, blank=True)
    public_ip = models.GenericIPAddressField("public IP", null=True, blank=True)
    private_ip = models.GenericIPAddressField("private IP", null=True, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    running_since = models.DateTimeField(
        null=True, blank=True, help_text="When the instance last started running."
    )

    # CloudWatch (percent 0-100; memory and disk only where the CloudWatch agent runs).
    cpu_percent = models.FloatField("CPU %", null=True, blank=True)
    memory_percent = models.FloatField("memory %", null=True, blank=True)
    disk_percent = models.FloatField("disk %", null=True, blank=True)

    # CML.
    service_status = models.CharField(
        "CML service", max_length=16, choices=ServiceStatus.choices, default=ServiceStatus.UNKNOWN
    )
    cml_version = models.CharField("CML version", max_length=32, blank=True)
    cml_ready = models.BooleanField("CML ready", null=True, blank=True)
    license_state = models.CharField(
        "licence", max_length=20, choices=LicenseState.choices, default=LicenseState.UNKNOWN
    )
    cml_cpu_percent = models.FloatField("CML CPU %", null=True, blank=True)
    cml_memory_used = models.BigIntegerField("CML memory used (bytes)", null=True, blank=True)
    cml_memory_total = models.BigIntegerField("CML memory total (bytes)", null=True, blank=True)
    cml_disk_used = models.BigIntegerField("CML disk used (bytes)", null=True, blank=True)
    cml_disk_total = models.BigIntegerField("CML disk total (bytes)", null=True, blank=True)
    nodes_running = models.PositiveIntegerField("running nodes", null=True, blank=True)
    nodes_total = models.PositiveIntegerField("total nodes", null=True, blank=True)
    allocated_cpus = models.PositiveIntegerField(
        "vCPUs allocated", null=True, blank=True, help_text="To running nodes, all compute hosts."
    )
    compute_hosts = models.JSONField(
        default=list, blank=True, help_text="Per compute host stats from system_stats."
    )
    labs_count = models.PositiveIntegerField(null=True, blank=True)

    # Collection bookkeeping.
    last_polled_at = models.DateTimeField(null=True, blank=True)
    labs_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)

    # A long action in flight (fleet/actions), shown until it settles.
    pending_action = models.CharField(max_length=12, blank=True, default="")
    pending_since = models.DateTimeField(null=True, blank=True)
    licence = models.JSONField(
        default=dict, blank=True, help_text="Registration, authorization and features."
    )

    # Activity, read from CML's telemetry by fleet/idle/activity.py.
    last_activity_at = models.DateTimeField(
        null=True, blank=True, help_text="The newest lab, node or user activity on CML."
    )
    recent_activity = models.JSONField(
        default=list, blank=True, help_text="The last 10 relevant telemetry events, newest first."
    )
    activity_seen_until = models.DateTimeField(
        null=True, blank=True, help_text="The newest telemetry event read: older ones are skipped."
    )
    activity_read_at = models.DateTimeField(null=True, blank=True)
    activity_error = models.CharField(max_length=500, blank=True)
    idle_since = models.DateTimeField(
        null=True, blank=True, help_text="Running with no activity since then (the idle rule)."
    )
    idle_stop_at = models.DateTimeField(
        null=True, blank=True, help_text="Warned: auto-pause stops it then, unless used or snoozed."
    )

    # Set by people: the idle rule and alerts for this worker.
    auto_pause = models.BooleanField(
        default=auto_pause_default, help_text="Stop this worker when it is idle."
    )
    snooze_until = models.DateTimeField(
        null=True, blank=True, help_text="Auto-pause leaves it running until then."
    )
    muted_until = models.DateTimeField(
        null=True, blank=True, help_text="No alerts about it until then (maintenance)."
    )

    created_at = models.DateTimeField(auto_now_add=True)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["name", "instance_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["region", "instance_id"], name="worker_unique_region_instance"
            ),
        ]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(fields=["region", "status"]),
            models.Index(fields=["service_status"]),
        ]
        permissions = [("refresh_worker", "Can refresh workers on demand")]

    def __str__(self) -> str:
        return f"{self.name or self.instance_id} ({self.region})"

    def get_absolute_url(self) -> str:
        return reverse("fleet:worker_detail", args=[self.pk])

    @property
    def pending_label(self) -> str:
        """ "stopping…" while a long action is in flight, else empty."""
        return PendingAction(self.pending_action).label if self.pending_action else ""

    @property
    def last_used_at(self):
        """The later of its last activity and its last start: the idle rule counts from here."""
        return max(filter(None, (self.last_activity_at, self.running_since)), default=None)

    @property
    def idle_for(self) -> timedelta | None:
        """How long the idle worker has gone unused (None while it is not idle)."""
        if self.idle_since is None or self.last_used_at is None:
            return None
        return timezone.now() - self.last_used_at

    @property
    def is_muted(self) -> bool:
        return self.muted_until is not None and self.muted_until > timezone.now()

    @property
    def is_snoozed(self) -> bool:
        return self.snooze_until is not None and self.snooze_until > timezone.now()

    def open_alerts(self):
        """Its open alerts, oldest first (the worker page)."""
        return self.alerts.open().order_by("opened_at")

    def pause_counts(self, days: int = 30) -> dict[str, int]:
        """Auto-pauses (stops by the idle rule) and starts in the last `days` days."""
        since = timezone.now() - timedelta(days=days)
        done = ["succeeded", "pending"]
        entries = self.actions.filter(started_at__gte=since, outcome__in=done)
        return entries.aggregate(
            paused=models.Count("pk", filter=models.Q(action="stop_worker", reason="idle")),
            started=models.Count("pk", filter=models.Q(action="start_worker")),
        )

    @property
    def cml_memory_percent(self) -> float | None:
        return _percent(self.cml_memory_used, self.cml_memory_total)

    @property
    def cml_disk_percent(self) -> float | None:
        return _percent(self.cml_disk_used, self.cml_disk_total)

    def seconds_since_poll(self) -> int | None:
        if self.last_polled_at is None:
            return None
        return int((timezone.now() - self.last_polled_at).total_seconds())

    def polled_within(self, seconds: int) -> bool:
        """Whether the last poll is recent enough that polling again would be wasteful."""
        if self.last_polled_at is None:
            return False
        return timezone.now() - self.last_polled_at < timedelta(seconds=seconds)


def _percent(used: int | None, total: int | None) -> float | None:
    if used is None or not total:
        return None
    return 100.0 * used / total
