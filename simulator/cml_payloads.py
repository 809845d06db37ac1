"""JSON bodies of a simulated CML 2.9 server, shaped like the real API.

Shapes follow responses captured from CML 2.9.0 (system_stats, system_health, licensing) and
the CML 2.9 schemas (lab fields). Values are plausible, not real.
"""

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CPU_MODEL = "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"
FEATURE_IDS = {
    "ENT": "regid.2019-10.com.cisco.CML_ENT_BASE,1.0_15d3393c-846c-4e00-a54e-1ea90f2b2160",
    "NODE": "regid.2019-10.com.cisco.CML_NODE_COUNT,1.0_2607650b-6ca8-46d5-81e5-e6688b7383c4",
}


@dataclass
class Compute:
    """One CML compute host; usage is kept as percentages so the host size can change."""

    id: str
    hostname: str
    is_controller: bool
    cpu_percent: float
    memory_percent: float
    disk_percent: float

    @classmethod
    def generate(cls, rng: random.Random, is_controller: bool) -> "Compute":
        octets = f"{rng.randint(16, 31)}-{rng.randint(0, 255)}-{rng.randint(1, 254)}"
        return cls(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            hostname=f"ip-172-{octets}" if is_controller else f"cml-compute-{rng.randint(1, 9)}",
            is_controller=is_controller,
            cpu_percent=rng.uniform(2, 60),
            memory_percent=rng.uniform(10, 70),
            disk_percent=rng.uniform(15, 60),
        )

    def drift(self, rng: random.Random) -> None:
        """A small random-walk step, kept within plausible bounds."""
        self.cpu_percent = _clamp(self.cpu_percent + rng.gauss(0, 6), 0.5, 99.0)
        self.memory_percent = _clamp(self.memory_percent + rng.gauss(0, 3), 5.0, 95.0)
        self.disk_percent = _clamp(self.disk_percent + rng.gauss(0.05, 0.3), 5.0, 98.0)


def usage(total: int, percent: float) -> dict[str, int]:
    used = int(total * percent / 100)
    return {"total": total, "free": total - used, "used": used}


def stats_payload(
    computes: list[Compute],
    cpu_count: int,
    memory_total: int,
    disk_total: int,
    total_nodes: int,
    running_nodes: int,
) -> dict[str, Any]:
    """`GET /system_stats`: per-compute stats with dominfo, their sum under "all"."""
    per_compute: dict[str, Any] = {}
    shares = _split(total_nodes, len(computes)), _split(running_nodes, len(computes))
    for compute, total, running in zip(computes, *shares, strict=True):
        per_compute[compute.id] = {
            "hostname": compute.hostname,
            "is_controller": compute.is_controller,
            "stats": {
                "cpu": {
                    "load": [round(compute.cpu_percent * cpu_count / 100, 2)] * 3,
                    "count": cpu_count,
                    "percent": compute.cpu_percent,
                    "model": CPU_MODEL,
                    "predicted": running,
                },
                "memory": usage(memory_total, compute.memory_percent),
                "disk": usage(disk_total, compute.disk_percent),
                "dominfo": {
                    "allocated_cpus": running,
                    "allocated_memory": running * 2048,
                    "total_nodes": total,
                    "total_orphans": 0,
                    "running_nodes": running,
                    "running_orphans": 0,
                },
            },
        }
    stats = [entry["stats"] for entry in per_compute.values()]
    controller_disk = per_compute[computes[0].id]["stats"]["disk"]
    return {
        "computes": per_compute,
        "all": {
            "cpu": {
                "count": sum(s["cpu"]["count"] for s in stats),
                "percent": sum(s["cpu"]["percent"] for s in stats) / len(stats),
            },
            "memory": _sum_usage([s["memory"] for s in stats]),
            "disk": _sum_usage([s["disk"] for s in stats]),
        },
        "controller": {"disk": dict(controller_disk)},
    }


def health_payload(computes: list[Compute], licensed: bool, is_enterprise: bool) -> dict[str, Any]:
    """`GET /system_health`."""
    checks = {
        "kvm_vmx_enabled": True,
        "enough_cpus": True,
        "lld_connected": True,
        "lld_synced": True,
        "libvirt": True,
        "fabric": True,
        "device_mux": True,
        "refplat_images_available": True,
        "docker_shim": True,
        "valid": True,
        "admission_state": "READY",
    }
    return {
        "valid": True,
        "computes": {
            c.id: {**checks, "is_controller": c.is_controller, "hostname": c.hostname}
            for c in computes
        },
        "is_licensed": licensed,
        "is_enterprise": is_enterprise,
        "controller": {
            "core_connected": True,
            "nodes_loaded": True,
            "images_loaded": True,
            "valid": True,
        },
    }


def licensing_payload(
    hostname: str,
    registration_status: str,
    authorization_status: str,
    is_enterprise: bool,
    nodes_in_use: int,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`GET /licensing`, as CML 2.9 reports a Smart Licensing registration. `now` anchors its
    dates (pass a fixed moment so that the answer, like a real server's, is stable)."""
    now = now or datetime.now(UTC)
    registered = registration_status == "COMPLETED"
    return {
        "registration": {
            "status": registration_status,
            "smart_account": "CML Fleet" if registered else None,
            "virtual_account": "Default" if registered else None,
            "expires": _stamp(now + timedelta(days=300)) if registered else None,
            "register_time": _event(attempted=now - timedelta(days=65), success="SUCCESS"),
            "renew_time": _event(scheduled=now + timedelta(days=115), success=None),
        },
        "authorization": {
            "status": authorization_status,
            "expires": _stamp(now + timedelta(days=85)) if registered else None,
            "renew_time": _event(attempted=now - timedelta(days=5), success="SUCCESS"),
        },
        "features": [
            _feature("ENT", "CML - Enterprise License", "base license", 1, int(is_enterprise)),
            _feature("NODE", "CML - Expansion Node License", "expansion nodes", 500, nodes_in_use),
        ],
        "reservation_mode": False,
        "transport": {
            "default_ssms": "https://smartreceiver.cisco.com/licservice/license",
            "ssms": "https://smartreceiver.cisco.com/licservice/license",
            "proxy": {"server": None, "port": None},
        },
        "udi": {
            "hostname": hostname,
            "product_uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, hostname)),
        },
        "product_license": {
            "active": "CML_Enterprise" if is_enterprise else "CML_Personal",
            "is_enterprise": is_enterprise,
        },
    }


def lab_payload(
    lab_id: str,
    title: str,
    state: str,
    owner: str,
    owner_username: str,
    owner_fullname: str,
    node_count: int,
    link_count: int,
    created: str,
    modified: str,
    groups: list[dict[str, str]],
) -> dict[str, Any]:
    """`GET /labs/{id}`, also each entry of `populate_lab_tiles`."""
    return {
        "id": lab_id,
        "created": created,
        "modified": modified,
        "lab_title": title,
        "lab_description": f"{title}: simulated lab",
        "lab_notes": "",
        "state": state,
        "owner": owner,
        "owner_username": owner_username,
        "owner_fullname": owner_fullname,
        "node_count": node_count,
        "link_count": link_count,
        "groups": groups,
        "effective_permissions": ["lab_admin", "lab_edit", "lab_exec", "lab_view"],
    }


def _feature(key: str, name: str, description: str, maximum: int, in_use: int) -> dict[str, Any]:
    return {
        "id": FEATURE_IDS[key],
        "name": name,
        "description": f"Cisco Modeling Labs - {description}",
        "in_use": in_use,
        "status": "IN_COMPLIANCE" if in_use else "INIT",
        "version": "1.0",
        "min": 0,
        "max": maximum,
        "minEndDate": None,
        "maxEndDate": None,
    }


def _event(
    attempted: datetime | None = None,
    scheduled: datetime | None = None,
    success: str | None = None,
) -> dict[str, Any]:
    return {
        "succeeded": _stamp(attempted) if attempted and success == "SUCCESS" else None,
        "attempted": _stamp(attempted) if attempted else None,
        "scheduled": _stamp(scheduled) if scheduled else None,
        "status": success,
        "failure": None,
        "success": success,
    }


def _stamp(moment: datetime) -> str:
    """Licensing times are UTC without a zone, like the real API: "2027-01-14 00:56:19"."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _sum_usage(items: list[dict[str, int]]) -> dict[str, int]:
    return {key: sum(item[key] for item in items) for key in ("total", "free", "used")}


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
