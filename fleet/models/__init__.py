"""What is stored, split by meaning; everything is importable from `fleet.models`."""

from fleet.models.actions import ActionEntry, ActionName, ActionOutcome
from fleet.models.alerts import (
    Alert,
    AlertChannel,
    AlertCursor,
    AlertKind,
    Notification,
    NotificationEvent,
    NotificationStatus,
)
from fleet.models.changes import Change, ChangeKind
from fleet.models.labs import Lab, LabState
from fleet.models.live import LiveProcess
from fleet.models.runs import (
    CollectionRun,
    CollectionShard,
    RunKind,
    RunScope,
    RunStatus,
    RunTrigger,
    ShardStatus,
)
from fleet.models.samples import Sample
from fleet.models.tokens import ApiToken
from fleet.models.workers import (
    INSTANCE_ID_RE,
    CheckStatus,
    LicenseState,
    PendingAction,
    ServiceStatus,
    Worker,
    WorkerStatus,
    validate_endpoint,
    validate_instance_id,
    validate_region,
)

__all__ = [
    "INSTANCE_ID_RE",
    "ActionEntry",
    "ApiToken",
    "ActionName",
    "ActionOutcome",
    "Alert",
    "AlertChannel",
    "AlertCursor",
    "AlertKind",
    "Notification",
    "NotificationEvent",
    "NotificationStatus",
    "PendingAction",
    "Change",
    "ChangeKind",
    "CheckStatus",
    "CollectionRun",
    "CollectionShard",
    "Lab",
    "LabState",
    "LicenseState",
    "LiveProcess",
    "RunKind",
    "RunScope",
    "RunStatus",
    "RunTrigger",
    "Sample",
    "ServiceStatus",
    "ShardStatus",
    "Worker",
    "WorkerStatus",
    "validate_endpoint",
    "validate_instance_id",
    "validate_region",
]
