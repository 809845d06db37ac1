"""Make one worker's observation fit the database's columns, saying what had to change."""

import ipaddress
import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations

from fleet.collection.derive import WorkerObservation
from fleet.collection.sources.aws import InstanceObservation
from fleet.collection.sources.cml import CMLObservation, LabObservation
from fleet.models import Lab, Worker
from fleet.models.field_groups import CML_STATS

# AWS's own limits for tag keys and values; tags have no column of their own (a JSON field).
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256
HOSTNAME_MAX = 255  # compute host names, kept in the compute_hosts JSON field
ERROR_MAX = 1000  # an error message from a source, before it joins last_error
NOTES_MAX = 10  # distinct notes kept per worker; the rest are counted

WORKER_COLUMNS = {field.name: field for field in Worker._meta.concrete_fields}
# The portable ranges (PostgreSQL's), so SQLite keeps exactly the same values.
_RANGES = BaseDatabaseOperations.integer_field_ranges


class Notes:
    """What fitting changed, each distinct note once, in order."""

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}

    def add(self, note: str) -> None:
        self._seen.setdefault(note)

    def extend(self, notes: Any) -> None:
        for note in notes:
            self.add(note)

    def as_tuple(self) -> tuple[str, ...]:
        notes = list(self._seen)
        if len(notes) > NOTES_MAX:
            notes = [*notes[:NOTES_MAX], f"and {len(notes) - NOTES_MAX} more problems"]
        return tuple(notes)


def fit_observation(seen: WorkerObservation) -> WorkerObservation:
    """The observation with every value made to fit its column; `notes` says what changed."""
    notes = Notes()
    aws = _fit_instance(seen.aws, notes) if seen.aws is not None and seen.aws.found else seen.aws
    cml = _fit_cml(seen.cml, notes) if seen.cml is not None else None
    return WorkerObservation(
        aws=aws,
        aws_error=text(seen.aws_error, "AWS error", notes, ERROR_MAX),
        cml=cml,
        notes=notes.as_tuple(),
    )


def text(value: str, where: str, notes: Notes, max_length: int | None = None) -> str:
    """Text PostgreSQL accepts: no NUL characters, valid Unicode, at most `max_length` long."""
    if "\x00" in value:
        value = value.replace("\x00", "")
        notes.add(f"{where}: NUL characters removed")
    try:
        value.encode()
    except UnicodeEncodeError:  # lone surrogates, which JSON's \ud800 escapes can produce
        value = value.encode(errors="replace").decode()
        notes.add(f"{where}: invalid Unicode replaced")
    if max_length is not None and len(value) > max_length:
        value = value[:max_length]
        notes.add(f"{where}: longer than {max_length} characters, cut")
    return value


def column_text(model: type[models.Model], name: str, value: str, where: str, notes: Notes) -> str:
    return text(value, where, notes, model._meta.get_field(name).max_length)


def whole(
    model: type[models.Model],
    name: str,
    value: int | None,
    where: str,
    notes: Notes,
    minimum: int | None = None,
) -> int | None:
    """A whole number inside its column's range (and at least `minimum`), else None."""
    if value is None:
        return None
    low, high = _RANGES[model._meta.get_field(name).get_internal_type()]
    low = low if minimum is None else max(low, minimum)
    if low <= value <= high:
        return value
    notes.add(f"{where}: {_short(value)} is outside {low}..{high}, dropped")
    return None


def percent(value: float | None, where: str, notes: Notes) -> float | None:
    """A finite percentage within 0-100, else None."""
    if value is None:
        return None
    if not math.isfinite(value):
        notes.add(f"{where}: not a finite number, dropped")
        return None
    if not 0 <= value <= 100:
        notes.add(f"{where}: {_short(value)} is outside 0..100, dropped")
        return None
    return value


def ip(value: str | None, where: str, notes: Notes) -> str | None:
    """An IPv4 or IPv6 address, else None."""
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        notes.add(f"{where}: {_short(value)} is not an IP address, dropped")
        return None


def moment(value: datetime | None, where: str, notes: Notes) -> datetime | None:
    """An aware timestamp that converts to UTC (year 1 with a positive offset does not)."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        notes.add(f"{where}: {_short(value.isoformat())} is out of range, dropped")
        return None


def _fit_instance(aws: InstanceObservation, notes: Notes) -> InstanceObservation:
    tags = {
        text(key, "AWS tag key", notes, TAG_KEY_MAX): text(
            value, "AWS tag value", notes, TAG_VALUE_MAX
        )
        for key, value in aws.tags.items()
    }
    return replace(
        aws,
        instance_type=column_text(
            Worker, "instance_type", aws.instance_type, "AWS instance type", notes
        ),
        ami_id=column_text(Worker, "ami_id", aws.ami_id, "AWS AMI id", notes),
        public_ip=ip(aws.public_ip, "AWS public IP", notes),
        private_ip=ip(aws.private_ip, "AWS private IP", notes),
        tags=tags,
        name=column_text(Worker, "name", aws.name, "AWS Name tag", notes),
        launched_at=moment(aws.launched_at, "AWS launch time", notes),
        cpu_percent=percent(aws.cpu_percent, "CloudWatch CPU", notes),
        memory_percent=percent(aws.memory_percent, "CloudWatch memory", notes),
        disk_percent=percent(aws.disk_percent, "CloudWatch disk", notes),
    )


def _fit_cml(cml: CMLObservation, notes: Notes) -> CMLObservation:
    notes.extend(cml.notes)
    figures = {
        name: _figure(name, getattr(cml, name), notes)
        for name in CML_STATS.fields
        if name != "compute_hosts"
    }
    return replace(
        cml,
        error=text(cml.error, "CML error", notes, ERROR_MAX),
        cml_version=column_text(Worker, "cml_version", cml.cml_version, "CML version", notes),
        licence=fit_licence(cml.licence, notes),
        compute_hosts=tuple(_fit_host(host, notes) for host in cml.compute_hosts),
        labs=None if cml.labs is None else fit_labs(cml.labs, notes),
        notes=(),  # now in the worker's notes
        **figures,
    )


def fit_licence(licence: dict | None, notes: Notes) -> dict | None:
    """The licence summary (a JSON field) with every text fit for PostgreSQL."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return text(value, "CML /licensing", notes, ERROR_MAX)
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return None if licence is None else clean(licence)


def _figure(name: str, value: float | None, notes: Notes) -> float | None:
    """One /system_stats figure fitted to its Worker column: a percentage, or a count or size
    that is never negative."""
    field = Worker._meta.get_field(name)
    where = f"CML /system_stats {str(field.verbose_name).removeprefix('CML ')}"
    if isinstance(field, models.FloatField):
        return percent(value, where, notes)
    return whole(Worker, name, value, where, notes, minimum=0)


def _fit_host(host: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """One compute host, each figure with the limits of the Worker column of the same name
    (or its cml_ name: memory_used is cml_memory_used); the host name cut to HOSTNAME_MAX."""
    where = "CML /system_stats compute"
    fitted = dict(host)
    fitted["hostname"] = text(host.get("hostname", ""), f"{where} hostname", notes, HOSTNAME_MAX)
    for name, value in host.items():
        field = WORKER_COLUMNS.get(name) or WORKER_COLUMNS.get(f"cml_{name}")
        if field is None:  # hostname, is_controller
            continue
        label = f"{where} {name.replace('_', ' ')}"
        if isinstance(field, models.FloatField):
            fitted[name] = percent(value, label, notes)
        else:
            fitted[name] = whole(Worker, field.name, value, label, notes, minimum=0)
    return fitted


def fit_labs(labs: tuple[LabObservation, ...], notes: Notes) -> tuple[LabObservation, ...]:
    """Labs that fit their columns; a lab whose id cannot be stored is skipped, and said so."""
    id_max = Lab._meta.get_field("lab_id").max_length
    fitted: dict[str, LabObservation] = {}
    for lab in labs:
        lab_id = text(lab.lab_id, "CML lab id", notes)
        if not lab_id:
            notes.add("CML labs: a lab without an id, skipped")
        elif len(lab_id) > id_max:
            notes.add(f"CML labs: lab id longer than {id_max} characters, skipped")
        elif lab_id in fitted:
            notes.add(f"CML labs: duplicate lab id {lab_id}, skipped")
        else:
            fitted[lab_id] = _fit_lab(lab, lab_id, notes)
    return tuple(fitted.values())


def _fit_lab(lab: LabObservation, lab_id: str, notes: Notes) -> LabObservation:
    return replace(
        lab,
        lab_id=lab_id,
        title=column_text(Lab, "title", lab.title, "CML lab title", notes),
        description=text(lab.description, "CML lab description", notes),
        owner=column_text(Lab, "owner", lab.owner, "CML lab owner", notes),
        node_count=whole(Lab, "node_count", lab.node_count, "CML lab node count", notes) or 0,
        link_count=whole(Lab, "link_count", lab.link_count, "CML lab link count", notes) or 0,
        created=moment(lab.created, "CML lab created", notes),
        modified=moment(lab.modified, "CML lab modified", notes),
    )


def _short(value: Any) -> str:
    """A value for a note: escaped (repr) when text, so the note itself is clean, and short."""
    shown = repr(value) if isinstance(value, str) else str(value)
    return shown if len(shown) <= 24 else shown[:21] + "..."
