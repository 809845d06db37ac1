"""The Worker's fields, one list per group: the single declaration that derive, fit, the
fragments, the admin and the CSV read, so a new figure is named once."""

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldGroup:
    title: str
    fields: tuple[str, ...]


# Set by people (admin, import); everything else is observed by the collection.
IDENTITY = FieldGroup("Identity", ("name", "instance_id", "region"))
EC2 = FieldGroup(
    "EC2",
    (
        "status",
        "system_check",
        "instance_check",
        "instance_type",
        "ami_id",
        "public_ip",
        "private_ip",
        "tags",
        "running_since",
    ),
)
# CloudWatch's figures: InstanceObservation carries them under these names.
CLOUDWATCH = FieldGroup("CloudWatch", ("cpu_percent", "memory_percent", "disk_percent"))
CML = FieldGroup("CML", ("cml_endpoint", "service_status", "cml_version", "cml_ready"))
# CML's /system_stats figures: CMLObservation carries them under these names; numbers are
# fitted to their column and rounded, and all are cleared when CML goes away.
CML_STATS = FieldGroup(
    "CML system stats",
    (
        "cml_cpu_percent",
        "cml_memory_used",
        "cml_memory_total",
        "cml_disk_used",
        "cml_disk_total",
        "nodes_running",
        "nodes_total",
        "allocated_cpus",
        "compute_hosts",
    ),
)
LICENCE = FieldGroup("Licence", ("license_state", "licence"))
# Labs live on the worker's disk: a stopped worker keeps them.
LABS = FieldGroup("Labs", ("labs_count", "labs_polled_at"))
# A long action in flight (fleet/actions): "stopping…" on every page until it settles.
ACTIONS = FieldGroup("Pending action", ("pending_action", "pending_since"))
# CML's telemetry, read by the activity job (not by the collection cycles).
ACTIVITY = FieldGroup(
    "Activity",
    (
        "last_activity_at",
        "recent_activity",
        "activity_seen_until",
        "activity_read_at",
        "activity_error",
        "idle_since",
        "idle_stop_at",
    ),
)
# Set by operators on the worker page (and admins in the admin): auto-pause, snooze, mute.
IDLE_CONTROLS = FieldGroup("Auto-pause and alerts", ("auto_pause", "snooze_until", "muted_until"))
COLLECTION = FieldGroup(
    "Collection", ("last_polled_at", "last_error", "consecutive_failures", "created_at")
)

SET_BY_PEOPLE = (IDENTITY, IDLE_CONTROLS)
OBSERVED = (EC2, CLOUDWATCH, CML, CML_STATS, LICENCE, LABS, ACTIONS, ACTIVITY, COLLECTION)
# Reset to their defaults when the worker stops or CML can no longer be asked.
CLEARED_WHEN_CML_DOWN = (*CML.fields, *CML_STATS.fields, *LICENCE.fields)
