"""The pure middle of the collection: old worker state + one observation → the fields that change.

No I/O here: `derive_changes` reads a `Worker` (saved or not) and plain observation dataclasses and
returns a dict of field → new value, empty when nothing changed. Everything the product decides
about what an observation means lives here, in one place, unit-tested without a network or DB.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from fleet.collection.sources.aws import InstanceObservation
from fleet.collection.sources.cml import CMLObservation, LabObservation
from fleet.models import (
    CheckStatus,
    Lab,
    LabState,
    ServiceStatus,
    Worker,
    WorkerStatus,
)
from fleet.models.field_groups import CLEARED_WHEN_CML_DOWN, CLOUDWATCH, CML_STATS


def cleared_when_cml_down() -> dict[str, Any]:
    """The CML fields at their model defaults: what a worker shows once CML is gone."""
    return {name: Worker._meta.get_field(name).get_default() for name in CLEARED_WHEN_CML_DOWN}


@dataclass(frozen=True)
class WorkerObservation:
    """What one cycle saw of one worker. `aws` is None when its whole region failed (then
    `aws_error` says why); `cml` is None when CML was not called (not running, no endpoint);
    `notes` says what `fit` changed or dropped to make the values fit their columns."""

    aws: InstanceObservation | None = None
    aws_error: str = ""
    cml: CMLObservation | None = None
    notes: tuple[str, ...] = ()


def cml_endpoint(template: str, worker: Worker, aws: InstanceObservation) -> str:
    """The CML base URL from CML_ENDPOINT_TEMPLATE, or "" when the template needs a missing IP."""
    values = {
        "instance_id": worker.instance_id,
        "region": worker.region,
        "public_ip": aws.public_ip or "",
        "private_ip": aws.private_ip or "",
    }
    for name in ("public_ip", "private_ip"):
        if "{" + name + "}" in template and not values[name]:
            return ""
    return template.format(**values).rstrip("/")


def derive_changes(
    worker: Worker, seen: WorkerObservation, endpoint_template: str
) -> dict[str, Any]:
    """Return {field: new value} for every field of `worker` that `seen` changes."""
    new: dict[str, Any] = {}
    errors: list[str] = []

    if seen.aws is None:
        errors.append(seen.aws_error or "AWS did not answer")
    elif not seen.aws.found:
        new.update(_vanished(worker))
        errors.append(f"instance {worker.instance_id} not found in {worker.region}")
    else:
        new.update(_from_aws(worker, seen.aws, endpoint_template))

    status = new.get("status", worker.status)
    if status != WorkerStatus.RUNNING:
        new.update(cleared_when_cml_down())
    elif seen.cml is not None:
        new.update(_from_cml(seen.cml))
        if not seen.cml.ok or seen.cml.error:  # an error while ok: an optional call (labs)
            errors.append(seen.cml.error or "CML did not answer")
    elif seen.aws is not None and not new.get("cml_endpoint", worker.cml_endpoint):
        new["service_status"] = ServiceStatus.UNKNOWN
        errors.append("no CML endpoint: CML_ENDPOINT_TEMPLATE needs an IP this instance lacks")

    errors.extend(seen.notes)
    new["last_error"] = "; ".join(errors)
    new["consecutive_failures"] = worker.consecutive_failures + 1 if errors else 0
    return {name: value for name, value in new.items() if getattr(worker, name) != value}


def _vanished(worker: Worker) -> dict[str, Any]:
    return {
        "status": WorkerStatus.TERMINATED,
        "public_ip": None,
        "private_ip": None,
        "cml_endpoint": "",
        **dict.fromkeys(CLOUDWATCH.fields),
    }


def _from_aws(worker: Worker, aws: InstanceObservation, endpoint_template: str) -> dict[str, Any]:
    status = aws.state if aws.state in WorkerStatus.values else WorkerStatus.UNKNOWN
    running = status == WorkerStatus.RUNNING
    fields: dict[str, Any] = {
        "status": status,
        "system_check": _check(aws.system_check),
        "instance_check": _check(aws.instance_check),
        "instance_type": aws.instance_type,
        "ami_id": aws.ami_id,
        "public_ip": aws.public_ip if running else None,
        "private_ip": aws.private_ip if running else None,
        "tags": dict(aws.tags),
        "cml_endpoint": cml_endpoint(endpoint_template, worker, aws) if running else "",
        **{name: _stored(getattr(aws, name)) if running else None for name in CLOUDWATCH.fields},
    }
    if aws.name:
        fields["name"] = aws.name
    fields["running_since"] = _running_since(worker, aws, running)
    return fields


def _running_since(worker: Worker, aws: InstanceObservation, running: bool) -> datetime | None:
    """When the instance last started: AWS's LaunchTime when it is newer than what we knew
    (AWS moves it at every start), else the first cycle that saw it running again (emulators
    such as moto leave LaunchTime at creation)."""
    if not running:
        return None
    if worker.status == WorkerStatus.RUNNING and worker.running_since is not None:
        return worker.running_since
    launched = aws.launched_at
    if launched is not None and (worker.running_since is None or launched > worker.running_since):
        return launched
    return timezone.now()


def _check(value: str | None) -> str:
    return value if value in CheckStatus.values else CheckStatus.UNKNOWN


def _from_cml(cml: CMLObservation) -> dict[str, Any]:
    if not cml.ok and not cml.cml_version:
        # Nothing answered (refused, timed out, booting): the service is unavailable; the last
        # known stats stay on the page, marked by the status, until it answers again.
        return {"service_status": ServiceStatus.UNAVAILABLE, "cml_ready": False}
    fields: dict[str, Any] = {
        "service_status": ServiceStatus.AVAILABLE if cml.ok else ServiceStatus.ERROR,
        "cml_version": cml.cml_version,
        "cml_ready": cml.cml_ready,
    }
    if cml.ok:
        if cml.license_state is not None:
            fields["license_state"] = cml.license_state
        if cml.licence is not None:
            fields["licence"] = cml.licence
        fields.update({name: _stored(getattr(cml, name)) for name in CML_STATS.fields})
    if cml.labs is not None:
        fields["labs_count"] = len(cml.labs)
    return fields


def _stored(value: Any) -> Any:
    """A figure as the Worker stores it: fractions to one decimal (finer noise is not a change
    worth a write and an event), compute hosts as a list of dicts."""
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, tuple):
        return [dict(item) for item in value]
    return value


LAB_FIELDS = [
    "title",
    "description",
    "state",
    "owner",
    "node_count",
    "link_count",
    "created",
    "modified",
]


def derive_lab_changes(
    worker: Worker, existing: list[Lab], observed: tuple[LabObservation, ...]
) -> tuple[list[Lab], list[int]]:
    """Return (labs to upsert, pks of labs to delete) so the stored labs match what CML listed.
    `observed` has been through `fit`: its values fit the columns and its ids are unique."""
    stored = {lab.lab_id: lab for lab in existing}
    upserts = []
    for seen in observed:
        lab = Lab(
            worker_id=worker.pk,
            lab_id=seen.lab_id,
            title=seen.title,
            description=seen.description,
            state=seen.state if seen.state in LabState.values else LabState.UNKNOWN,
            owner=seen.owner,
            node_count=seen.node_count,
            link_count=seen.link_count,
            created=seen.created,
            modified=seen.modified,
        )
        old = stored.get(seen.lab_id)
        if old is None or any(getattr(old, f) != getattr(lab, f) for f in LAB_FIELDS):
            upserts.append(lab)
    listed = {seen.lab_id for seen in observed}
    deletes = [lab.pk for lab in existing if lab.lab_id not in listed]
    return upserts, deletes
