"""Pure parsing of CML API answers (DESIGN §5), tolerant of missing keys and odd types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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


def licence_summary(licensing: dict) -> dict[str, Any]:
    """What the worker page shows of /licensing: registration and authorization status and
    expiry, the Smart Account, and each feature's name, status and use."""
    registration = _dict(licensing.get("registration"))
    authorization = _dict(licensing.get("authorization"))
    features = licensing.get("features")
    return {
        "registration": _status(registration),
        "registration_expires": str(registration.get("expires") or ""),
        "smart_account": str(registration.get("smart_account") or ""),
        "authorization": _status(authorization),
        "authorization_expires": str(authorization.get("expires") or ""),
        "features": [
            {
                "name": str(feature.get("name") or feature.get("id") or ""),
                "status": str(feature.get("status") or ""),
                "in_use": _int(feature.get("in_use")),
                "max": _int(feature.get("max")),
            }
            for feature in (features if isinstance(features, list) else [])
            if isinstance(feature, dict)
        ],
    }


def parse_health(health: dict) -> bool | None:
    """system_health.valid: whether CML considers itself healthy."""
    valid = health.get("valid")
    return valid if isinstance(valid, bool) else None


def parse_stats(stats: dict) -> dict[str, Any]:
    """CMLObservation's resource fields from /system_stats (bytes; CPU percent 0-100)."""
    overall = _dict(stats.get("all"))
    memory = _dict(overall.get("memory"))
    disk = _dict(overall.get("disk")) or _dict(_dict(stats.get("controller")).get("disk"))
    hosts = tuple(compute_host(_dict(c)) for c in _dict(stats.get("computes")).values())
    return {
        "cpu_percent": _float(_dict(overall.get("cpu")).get("percent")),
        "memory_used": _used(memory),
        "memory_total": _int(memory.get("total")),
        "disk_used": _used(disk),
        "disk_total": _int(disk.get("total")),
        "nodes_running": _sum(host["nodes_running"] for host in hosts),
        "nodes_total": _sum(host["nodes_total"] for host in hosts),
        "compute_hosts": hosts,
    }


def compute_host(compute: dict) -> dict[str, Any]:
    """One compute of /system_stats, flattened for Worker.compute_hosts."""
    stats = _dict(compute.get("stats"))
    memory, disk = _dict(stats.get("memory")), _dict(stats.get("disk"))
    dominfo = _dict(stats.get("dominfo"))
    return {
        "hostname": str(compute.get("hostname") or ""),
        "is_controller": bool(compute.get("is_controller", False)),
        "cpu_percent": _float(_dict(stats.get("cpu")).get("percent")),
        "memory_used": _used(memory),
        "memory_total": _int(memory.get("total")),
        "disk_used": _used(disk),
        "disk_total": _int(disk.get("total")),
        "nodes_running": _int(dominfo.get("running_nodes")),
        "nodes_total": _int(dominfo.get("total_nodes")),
    }


def parse_lab(key: str, data: dict) -> dict[str, Any]:
    """LabObservation's fields from a lab (GET /labs/{id}, or one of populate_lab_tiles)."""
    return {
        "lab_id": str(data.get("id") or key),
        "title": str(data.get("lab_title") or ""),
        "description": str(data.get("lab_description") or ""),
        "state": str(data.get("state") or "UNKNOWN"),
        "owner": str(data.get("owner_username") or data.get("owner") or ""),
        "node_count": _int(data.get("node_count")) or 0,
        "link_count": _int(data.get("link_count")) or 0,
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


def _used(section: dict) -> int | None:
    used = _int(section.get("used"))
    if used is None:
        total, free = _int(section.get("total")), _int(section.get("free"))
        if total is not None and free is not None:
            used = total - free
    return used


def _sum(values: Any) -> int | None:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}
