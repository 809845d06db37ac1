"""derive is pure: old state + observation → changed fields. No network, no database."""

from datetime import UTC, datetime

import pytest

from fleet.collection.derive import (
    WorkerObservation,
    cml_endpoint,
    derive_changes,
    derive_lab_changes,
)
from fleet.collection.sources.aws import InstanceObservation
from fleet.collection.sources.cml import CMLObservation, LabObservation
from fleet.models import Lab, Worker

TEMPLATE = "https://{public_ip}"


def _worker(**fields) -> Worker:
    return Worker(pk=7, region="us-east-1", instance_id="i-0123456789abcdef0", **fields)


def _running(**fields) -> InstanceObservation:
    values = {
        "instance_id": "i-0123456789abcdef0",
        "found": True,
        "state": "running",
        "system_check": "ok",
        "instance_check": "ok",
        "instance_type": "m5.2xlarge",
        "ami_id": "ami-12c6146b",
        "public_ip": "3.3.3.3",
        "private_ip": "10.0.0.3",
        "tags": {"Name": "cml-01", "Team": "net"},
        "name": "cml-01",
        "cpu_percent": 12.34,
        "memory_percent": 40.0,
        "disk_percent": None,
    }
    return InstanceObservation(**{**values, **fields})


def _cml(**fields) -> CMLObservation:
    values = {
        "ok": True,
        "cml_version": "2.9.1",
        "cml_ready": True,
        "license_state": "licensed",
        "cml_cpu_percent": 20.0,
        "cml_memory_used": 4,
        "cml_memory_total": 16,
        "cml_disk_used": 10,
        "cml_disk_total": 100,
        "nodes_running": 3,
        "nodes_total": 5,
        "compute_hosts": ({"hostname": "cml-controller", "is_controller": True},),
    }
    return CMLObservation(**{**values, **fields})


def test_a_running_worker_takes_every_aws_and_cml_field():
    changes = derive_changes(_worker(), WorkerObservation(aws=_running(), cml=_cml()), TEMPLATE)
    assert changes["status"] == "running"
    assert changes["name"] == "cml-01"
    assert changes["public_ip"] == "3.3.3.3"
    assert changes["cml_endpoint"] == "https://3.3.3.3"
    assert changes["cpu_percent"] == 12.3  # rounded: finer noise is not a change
    assert "disk_percent" not in changes  # None before, None now
    assert changes["service_status"] == "available"
    assert changes["license_state"] == "licensed"
    assert changes["nodes_running"] == 3
    assert changes["compute_hosts"] == [{"hostname": "cml-controller", "is_controller": True}]
    assert "last_error" not in changes and "consecutive_failures" not in changes


def test_nothing_changes_when_the_observation_matches_the_stored_state():
    worker = _worker()
    seen = WorkerObservation(aws=_running(), cml=_cml())
    for name, value in derive_changes(worker, seen, TEMPLATE).items():
        setattr(worker, name, value)
    assert derive_changes(worker, seen, TEMPLATE) == {}


def test_a_stopped_worker_loses_its_ips_endpoint_metrics_and_cml_fields():
    worker = _worker(
        status="running",
        public_ip="3.3.3.3",
        private_ip="10.0.0.3",
        cml_endpoint="https://3.3.3.3",
        cpu_percent=50.0,
        service_status="available",
        cml_version="2.9.1",
        cml_ready=True,
        license_state="licensed",
        nodes_running=3,
        compute_hosts=[{"hostname": "x"}],
    )
    stopped = _running(state="stopped", public_ip=None, cpu_percent=None, memory_percent=None)
    changes = derive_changes(worker, WorkerObservation(aws=stopped), TEMPLATE)
    assert changes["status"] == "stopped"
    assert changes["public_ip"] is None and changes["private_ip"] is None
    assert changes["cml_endpoint"] == ""
    assert changes["cpu_percent"] is None
    assert changes["service_status"] == "unknown"
    assert changes["cml_version"] == "" and changes["cml_ready"] is None
    assert changes["license_state"] == "unknown"
    assert changes["nodes_running"] is None and changes["compute_hosts"] == []


def test_a_stopped_worker_loses_its_public_ip_even_when_aws_still_reports_one():
    worker = _worker(
        status="running",
        public_ip="3.3.3.3",
        private_ip="10.0.0.3",
        cml_endpoint="https://3.3.3.3",
    )
    stopped = _running(state="stopped")  # an Elastic IP stays on a stopped instance
    changes = derive_changes(worker, WorkerObservation(aws=stopped), TEMPLATE)
    assert changes["public_ip"] is None and changes["private_ip"] is None
    assert changes["cml_endpoint"] == ""


def test_noise_below_a_tenth_of_a_percent_is_not_a_change():
    worker = _worker()
    seen = WorkerObservation(aws=_running(), cml=_cml())
    for name, value in derive_changes(worker, seen, TEMPLATE).items():
        setattr(worker, name, value)
    noisy = WorkerObservation(
        aws=_running(cpu_percent=12.33, memory_percent=40.04, disk_percent=None),
        cml=_cml(cml_cpu_percent=20.04),
    )
    assert derive_changes(worker, noisy, TEMPLATE) == {}
    moved = WorkerObservation(aws=_running(memory_percent=40.06), cml=_cml(cml_cpu_percent=20.06))
    assert derive_changes(worker, moved, TEMPLATE) == {
        "memory_percent": 40.1,
        "cml_cpu_percent": 20.1,
    }


def test_a_failed_labs_read_is_the_workers_error_while_cml_stays_available():
    labs_failed = _cml(error="HTTP 500 from /populate_lab_tiles")
    changes = derive_changes(
        _worker(), WorkerObservation(aws=_running(), cml=labs_failed), TEMPLATE
    )
    assert changes["service_status"] == "available"
    assert changes["last_error"] == "HTTP 500 from /populate_lab_tiles"


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("pending", "pending"),
        ("running", "running"),
        ("stopping", "stopping"),
        ("stopped", "stopped"),
        ("shutting-down", "shutting-down"),
        ("terminated", "terminated"),
        ("rebooting-somehow", "unknown"),
    ],
)
def test_ec2_states_map_to_statuses(state, status):
    changes = derive_changes(_worker(), WorkerObservation(aws=_running(state=state)), TEMPLATE)
    assert changes.get("status", "unknown") == status


def test_status_checks_outside_the_known_values_are_unknown():
    seen = WorkerObservation(aws=_running(system_check="x" * 50, instance_check="impaired"))
    changes = derive_changes(_worker(system_check="ok", instance_check="ok"), seen, TEMPLATE)
    assert (changes["system_check"], changes["instance_check"]) == ("unknown", "impaired")


def test_a_vanished_instance_becomes_terminated_with_an_error():
    worker = _worker(status="running", public_ip="3.3.3.3", consecutive_failures=2)
    vanished = InstanceObservation(instance_id=worker.instance_id, found=False)
    changes = derive_changes(worker, WorkerObservation(aws=vanished), TEMPLATE)
    assert changes["status"] == "terminated"
    assert changes["public_ip"] is None
    assert "not found in us-east-1" in changes["last_error"]
    assert changes["consecutive_failures"] == 3


def test_a_failed_region_keeps_the_ec2_fields_and_records_the_error():
    worker = _worker(status="running", public_ip="3.3.3.3", service_status="available")
    seen = WorkerObservation(aws_error="AWS us-east-1: endpoint unreachable")
    changes = derive_changes(worker, seen, TEMPLATE)
    assert changes == {
        "last_error": "AWS us-east-1: endpoint unreachable",
        "consecutive_failures": 1,
    }


def test_cml_not_answering_is_unavailable_and_keeps_the_last_stats():
    worker = _worker(
        status="running", service_status="available", nodes_running=3, consecutive_failures=1
    )
    failed = CMLObservation(ok=False, error="timeout after 10s")
    changes = derive_changes(worker, WorkerObservation(aws=_running(), cml=failed), TEMPLATE)
    assert changes["service_status"] == "unavailable"
    assert changes["cml_ready"] is False
    assert "nodes_running" not in changes
    assert changes["last_error"] == "timeout after 10s"
    assert changes["consecutive_failures"] == 2


def test_cml_answering_badly_is_an_error():
    failed = CMLObservation(
        ok=False, error="HTTP 500 from /system_stats", cml_version="2.9.1", cml_ready=True
    )
    changes = derive_changes(_worker(), WorkerObservation(aws=_running(), cml=failed), TEMPLATE)
    assert changes["service_status"] == "error"
    assert changes["cml_version"] == "2.9.1"
    assert changes["last_error"] == "HTTP 500 from /system_stats"


def test_a_booting_cml_is_unavailable():
    booting = CMLObservation(ok=False, error="CML is not ready (HTTP 502)")
    changes = derive_changes(_worker(), WorkerObservation(aws=_running(), cml=booting), TEMPLATE)
    assert changes["service_status"] == "unavailable"


def test_success_clears_the_error_and_the_failure_count():
    worker = _worker(last_error="timeout", consecutive_failures=4)
    changes = derive_changes(worker, WorkerObservation(aws=_running(), cml=_cml()), TEMPLATE)
    assert changes["last_error"] == ""
    assert changes["consecutive_failures"] == 0


def test_labs_count_follows_the_labs_read_and_stays_when_labs_were_not_read():
    lab = LabObservation("l1", "Lab", "", "STARTED", "admin", 2, 1, None, None)
    read = derive_changes(
        _worker(), WorkerObservation(aws=_running(), cml=_cml(labs=(lab,))), TEMPLATE
    )
    assert read["labs_count"] == 1
    unread = derive_changes(
        _worker(labs_count=1), WorkerObservation(aws=_running(), cml=_cml()), TEMPLATE
    )
    assert "labs_count" not in unread


def test_a_template_needing_a_missing_public_ip_gives_no_endpoint_and_says_why():
    seen = WorkerObservation(aws=_running(public_ip=None))
    changes = derive_changes(_worker(), seen, TEMPLATE)
    assert changes.get("cml_endpoint", "") == ""
    assert "no CML endpoint" in changes["last_error"]


@pytest.mark.parametrize(
    ("template", "endpoint"),
    [
        ("https://{public_ip}", "https://3.3.3.3"),
        ("https://{private_ip}:8443/", "https://10.0.0.3:8443"),
        ("http://127.0.0.1:9/cml/{instance_id}", "http://127.0.0.1:9/cml/i-0123456789abcdef0"),
    ],
)
def test_endpoints_are_built_from_the_template(template, endpoint):
    assert cml_endpoint(template, _worker(), _running()) == endpoint


def test_lab_changes_upsert_new_and_changed_labs_and_delete_vanished_ones():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    worker = _worker()
    kept = Lab(
        pk=1,
        worker_id=7,
        lab_id="same",
        title="Same",
        state="STARTED",
        owner="a",
        node_count=1,
        link_count=0,
        created=when,
        modified=when,
    )
    changed = Lab(pk=2, worker_id=7, lab_id="changed", title="Old", state="STOPPED")
    gone = Lab(pk=3, worker_id=7, lab_id="gone", title="Gone")
    observed = (
        LabObservation("same", "Same", "", "STARTED", "a", 1, 0, when, when),
        LabObservation("changed", "New", "", "STARTED", "", 0, 0, None, None),
        LabObservation("new", "New lab", "", "DEFINED_ON_CORE", "b", 0, 0, None, None),
    )
    upserts, deletes = derive_lab_changes(worker, [kept, changed, gone], observed)
    assert sorted(lab.lab_id for lab in upserts) == ["changed", "new"]
    assert deletes == [3]
