"""Workers (EC2 instances running CML), their labs, and the collection runs that observe them."""

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
    nodes_running = models.PositiveIntegerField(null=True, blank=True)
    nodes_total = models.PositiveIntegerField(null=True, blank=True)
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

    created_at = models.DateTimeField(auto_now_add=True)

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
    def is_running(self) -> bool:
        return self.status == WorkerStatus.RUNNING

    @property
    def pending_label(self) -> str:
        """ "stopping…" while a long action is in flight, else empty."""
        return PendingAction(self.pending_action).label if self.pending_action else ""

    @staticmethod
    def in_trouble_q() -> models.Q:
        """Running, but CML does not answer well or an EC2 status check is failing."""
        return models.Q(status=WorkerStatus.RUNNING) & (
            ~models.Q(service_status=ServiceStatus.AVAILABLE)
            | models.Q(system_check=CheckStatus.IMPAIRED)
            | models.Q(instance_check=CheckStatus.IMPAIRED)
        )

    @property
    def in_trouble(self) -> bool:
        return self.is_running and (
            self.service_status != ServiceStatus.AVAILABLE
            or CheckStatus.IMPAIRED in (self.system_check, self.instance_check)
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


class RunKind(models.TextChoices):
    METRICS = "metrics"
    LABS = "labs"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule"
    REFRESH = "refresh", "Refresh button"
    COMMAND = "command", "Management command"


class RunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped", "Skipped (another cycle was running)"


class CollectionRunQuerySet(models.QuerySet):
    def close_stale(self, older_than: timedelta, message: str) -> int:
        """Mark as failed, in one UPDATE, the runs still "running" that started longer than
        `older_than` ago: the process that ran them was killed or lost its database and never
        said so. `finished_at` stays empty (nobody knows when they stopped). Returns how many."""
        return self.filter(
            status=RunStatus.RUNNING, started_at__lt=timezone.now() - older_than
        ).update(status=RunStatus.FAILED, message=message)

    def latest_full(self) -> "CollectionRun | None":
        """The newest cycle over the whole fleet that was not skipped (running or finished)."""
        return (
            self.exclude(status=RunStatus.SKIPPED)
            .exclude(trigger=RunTrigger.REFRESH, workers_total__lte=1)
            .order_by("-started_at")
            .first()
        )


class CollectionRun(models.Model):
    """One collection cycle: when, what it saw, what changed, what failed."""

    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.METRICS)
    trigger = models.CharField(
        max_length=16, choices=RunTrigger.choices, default=RunTrigger.SCHEDULE
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
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
        indexes = [models.Index(fields=["kind", "status", "-started_at"])]

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


class ChangeKind(models.TextChoices):
    UPDATED = "updated"
    CREATED = "created"
    DELETED = "deleted"


FLEET_CHANGE = 0  # Change.worker_id of fleet-level changes (a cycle's progress)


class Change(models.Model):
    """The change log (a transactional outbox): one row per committed change to a worker.

    Written in the same transaction as the change itself, so the live pages never miss a change
    and never hear of one that rolled back. `worker_id` is a plain column, not a foreign key, so
    the deletion of a worker is logged too.
    """

    worker_id = models.BigIntegerField()
    kind = models.CharField(max_length=8, choices=ChangeKind.choices, default=ChangeKind.UPDATED)
    fields = models.JSONField(default=list, help_text="Names of the fields that changed.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} worker {self.worker_id} {self.kind}"


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
        indexes = [models.Index(fields=["worker", "taken_at"])]

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


# --- Actions ---


class PendingAction(models.TextChoices):
    """A long action in flight on a worker, shown at once ("stopping…") until it settles."""

    NONE = "", "none"
    START = "start", "starting…"
    STOP = "stop", "stopping…"
    TERMINATE = "terminate", "terminating…"
    REGISTER = "register", "registering licence…"


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


class ActionOutcome(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    NOOP = "noop", "nothing to do"
    FAILED = "failed"


class ActionEntryQuerySet(models.QuerySet):
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
        ]

    def __str__(self) -> str:
        return f"{self.username or 'system'} {self.get_action_display()} {self.target}"

    @property
    def duration(self) -> timedelta | None:
        return None if self.finished_at is None else self.finished_at - self.started_at
