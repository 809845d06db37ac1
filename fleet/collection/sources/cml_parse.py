"""Pure parsing of CML API answers, tolerant of missing keys and odd types.

Parsing gives each value its JSON type or None: a key that is missing is simply None, while a
value of the wrong type (a string where a number belongs, a list where an object does) or a
number JSON cannot hold (NaN, Infinity) is dropped and named in `notes`, so the worker's row can
say what its CML answered. Fitting values to the database's columns is `fleet.collection.fit`'s job.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

Notes = list[str]  # what an answer held that could not be used, one short line each

# CML's /licensing reports Cisco Smart Licensing states, upper case with underscores. Seen from
# CML: registration COMPLETED | FAILED | UNKNOWN, authorization IN_COMPLIANCE | OUT_OF_COMPLIANCE
# | EVAL | INIT (virl2-client's `register_wait` waits for COMPLETED then IN_COMPLIANCE; its docs
# show a licensed server). The expired and reserved names come from the Smart Licensing agent's
# vocabulary (EVAL_EXPIRED, AUTHORIZATION_EXPIRED, AUTHORIZED_RESERVED, NOT_AUTHORIZED); spaces and
# hyphens are read as underscores. The authorization state decides when it is one of these:
AUTHORIZATION_STATES = {
    "IN_COMPLIANCE": "licensed",
    "AUTHORIZED": "licensed",
    "AUTHORIZED_RESERVED": "licensed",
    "EVAL": "evaluation",
    "EVALUATION": "evaluation",
    "EVAL_MODE": "evaluation",
    "EVALUATION_MODE": "evaluation",
    "OUT_OF_COMPLIANCE": "out_of_compliance",
    "EVAL_EXPIRED": "expired",
    "EVALUATION_EXPIRED": "expired",
    "AUTHORIZATION_EXPIRED": "expired",
    "AUTH_EXPIRED": "expired",
    "EXPIRED": "expired",
}
# Otherwise (INIT, NOT_AUTHORIZED, missing...) a registration that did not complete means
# "unregistered"; anything else is "unknown".
UNREGISTERED_STATES = {
    "UNREGISTERED",
    "NOT_REGISTERED",
    "DEREGISTERED",
    "NOT_STARTED",
    "FAILED",
    "REGISTRATION_FAILED",
}


def license_state(licensing: dict) -> str:
    """Map /licensing onto a fleet.models.LicenseState value."""
    authorization = _status(licensing.get("authorization"))
    if authorization in AUTHORIZATION_STATES:
        return AUTHORIZATION_STATES[authorization]
    if _status(licensing.get("registration")) in UNREGISTERED_STATES:
        return "unregistered"
    return "unknown"


def licence_summary(licensing: dict, notes: Notes) -> dict[str, Any]:
    """What the worker page shows of /licensing: registration and authorization status and
    expiry, the Smart Account, and each feature's name, status and use."""
    where = "CML /licensing"
    registration = _dict(licensing.get("registration"), f"{where} registration", notes)
    authorization = _dict(licensing.get("authorization"), f"{where} authorization", notes)
    features = licensing.get("features")
    return {
        "registration": _status(registration),
        "registration_expires": _str(registration.get("expires"), f"{where} expires", notes),
        "smart_account": _str(registration.get("smart_account"), f"{where} account", notes),
        "authorization": _status(authorization),
        "authorization_expires": _str(
            authorization.get("expires"), f"{where} authorization expires", notes
        ),
        "features": [
            {
                "name": _str(feature.get("name") or feature.get("id"), f"{where} feature", notes),
                "status": _str(feature.get("status"), f"{where} feature status", notes),
                "in_use": _int(feature.get("in_use"), f"{where} feature in_use", notes),
                "max": _int(feature.get("max"), f"{where} feature max", notes),
            }
            for feature in (features if isinstance(features, list) else [])
            if isinstance(feature, dict)
        ],
    }


def parse_stats(stats: dict, notes: Notes) -> dict[str, Any]:
    """CMLObservation's resource fields from /system_stats (bytes; CPU percent 0-100)."""
    where = "CML /system_stats"
    overall = _dict(stats.get("all"), f"{where} all", notes)
    memory = _dict(overall.get("memory"), f"{where} all.memory", notes)
    disk = _dict(overall.get("disk"), f"{where} all.disk", notes)
    if not disk:
        controller = _dict(stats.get("controller"), f"{where} controller", notes)
        disk = _dict(controller.get("disk"), f"{where} controller.disk", notes)
    computes = _dict(stats.get("computes"), f"{where} computes", notes)
    hosts = tuple(
        compute_host(_dict(c, f"{where} computes[]", notes), notes) for c in computes.values()
    )
    return {
        "cml_cpu_percent": _float(
            _dict(overall.get("cpu"), f"{where} all.cpu", notes).get("percent"),
            f"{where} all.cpu.percent",
            notes,
        ),
        "cml_memory_used": _used(memory, f"{where} all.memory", notes),
        "cml_memory_total": _int(memory.get("total"), f"{where} all.memory.total", notes),
        "cml_disk_used": _used(disk, f"{where} all.disk", notes),
        "cml_disk_total": _int(disk.get("total"), f"{where} all.disk.total", notes),
        "nodes_running": _sum(host["nodes_running"] for host in hosts),
        "nodes_total": _sum(host["nodes_total"] for host in hosts),
        "allocated_cpus": _sum(host["allocated_cpus"] for host in hosts),
        "compute_hosts": hosts,
    }


def compute_host(compute: dict, notes: Notes) -> dict[str, Any]:
    """One compute of /system_stats, flattened for Worker.compute_hosts."""
    where = "CML /system_stats computes[]"
    stats = _dict(compute.get("stats"), f"{where}.stats", notes)
    memory = _dict(stats.get("memory"), f"{where}.stats.memory", notes)
    disk = _dict(stats.get("disk"), f"{where}.stats.disk", notes)
    dominfo = _dict(stats.get("dominfo"), f"{where}.stats.dominfo", notes)
    is_controller = compute.get("is_controller", False)
    return {
        "hostname": _str(compute.get("hostname"), f"{where}.hostname", notes),
        "is_controller": is_controller if isinstance(is_controller, bool) else False,
        "cpu_percent": _float(
            _dict(stats.get("cpu"), f"{where}.stats.cpu", notes).get("percent"),
            f"{where}.stats.cpu.percent",
            notes,
        ),
        "memory_used": _used(memory, f"{where}.stats.memory", notes),
        "memory_total": _int(memory.get("total"), f"{where}.stats.memory.total", notes),
        "disk_used": _used(disk, f"{where}.stats.disk", notes),
        "disk_total": _int(disk.get("total"), f"{where}.stats.disk.total", notes),
        "nodes_running": _int(
            dominfo.get("running_nodes"), f"{where}.stats.dominfo.running_nodes", notes
        ),
        "nodes_total": _int(
            dominfo.get("total_nodes"), f"{where}.stats.dominfo.total_nodes", notes
        ),
        "allocated_cpus": _int(
            dominfo.get("allocated_cpus"), f"{where}.stats.dominfo.allocated_cpus", notes
        ),
    }


def parse_lab(key: str, data: dict, notes: Notes) -> dict[str, Any]:
    """LabObservation's fields from a lab (GET /labs/{id}, or one of populate_lab_tiles)."""
    where = "CML labs"
    return {
        "lab_id": _str(data.get("id"), f"{where} id", notes) or key,
        "title": _str(data.get("lab_title"), f"{where} lab_title", notes),
        "description": _str(data.get("lab_description"), f"{where} lab_description", notes),
        "state": _str(data.get("state"), f"{where} state", notes) or "UNKNOWN",
        "owner": _str(data.get("owner_username"), f"{where} owner_username", notes)
        or _str(data.get("owner"), f"{where} owner", notes),
        "node_count": _int(data.get("node_count"), f"{where} node_count", notes) or 0,
        "link_count": _int(data.get("link_count"), f"{where} link_count", notes) or 0,
        "created": parse_datetime(data.get("created")),
        "modified": parse_datetime(data.get("modified")),
    }


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as an aware datetime (UTC when it has no offset), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _status(section: Any) -> str:
    status = _dict(section).get("status")
    if not isinstance(status, str):
        return ""
    return status.strip().upper().replace(" ", "_").replace("-", "_")


def _used(section: dict, where: str, notes: Notes) -> int | None:
    used = _int(section.get("used"), f"{where}.used", notes)
    if used is None:
        total = _int(section.get("total"), f"{where}.total", [])  # noted by the caller
        free = _int(section.get("free"), f"{where}.free", notes)
        if total is not None and free is not None:
            used = total - free
    return used


def _sum(values: Any) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _float(value: Any, where: str, notes: Notes) -> float | None:
    """A JSON number as a finite float; None when missing, noted when of another type."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        notes.append(f"{where}: not a number ({type(value).__name__})")
        return None
    if not math.isfinite(value):
        notes.append(f"{where}: not a finite number ({value})")
        return None
    return float(value)


def _int(value: Any, where: str, notes: Notes) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # exact, however large: fit checks the column's range
    number = _float(value, where, notes)
    return None if number is None else int(number)


def _str(value: Any, where: str, notes: Notes) -> str:
    """A JSON string; "" when missing or null, noted when of another type."""
    if value is None:
        return ""
    if not isinstance(value, str):
        notes.append(f"{where}: not a string ({type(value).__name__})")
        return ""
    return value


def _dict(value: Any, where: str = "", notes: Notes | None = None) -> dict:
    """A JSON object; {} when missing, noted (when `notes` is given) when of another type."""
    if isinstance(value, dict):
        return value
    if value is not None and notes is not None:
        notes.append(f"{where}: not a JSON object ({type(value).__name__})")
    return {}
