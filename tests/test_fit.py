"""`fit` is pure: an observation in, the same observation fitted to the columns and notes out.
The PostgreSQL consequences are in tests/test_fault_sweep.py; these pin each rule."""

from datetime import UTC, datetime, timedelta, timezone

from fleet.collection.derive import WorkerObservation, derive_changes
from fleet.collection.fit import NOTES_MAX, fit_observation
from fleet.collection.sources.aws import InstanceObservation
from fleet.collection.sources.cml import CMLObservation, LabObservation
from fleet.models import Worker

LAB = LabObservation("lab-1", "Lab", "", "STARTED", "admin", 1, 0, None, None)


def _aws(**fields) -> InstanceObservation:
    values = {
        "instance_id": "i-0123456789abcdef0",
        "found": True,
        "state": "running",
        "instance_type": "m5.2xlarge",
        "ami_id": "ami-12c6146b",
        "public_ip": "3.3.3.3",
        "private_ip": "10.0.0.3",
        "tags": {"Name": "cml-01"},
        "name": "cml-01",
        "cpu_percent": 12.0,
    }
    return InstanceObservation(**{**values, **fields})


def _fit(aws=None, cml=None) -> WorkerObservation:
    return fit_observation(WorkerObservation(aws=aws or _aws(), cml=cml))


def test_clean_values_pass_unchanged_and_without_notes():
    cml = CMLObservation(ok=True, cml_version="2.9.1", cml_cpu_percent=5.0, labs=(LAB,))
    fitted = _fit(cml=cml)
    assert fitted.aws == _aws() and fitted.cml == cml and fitted.notes == ()


def test_aws_text_loses_nul_and_invalid_unicode_and_is_cut_to_its_column():
    fitted = _fit(
        _aws(
            instance_type="m5\x00.large",
            ami_id="ami-" + "f" * 40,
            name="\ud800web",
            tags={"Team\x00": "x" * 300},
        )
    )
    assert fitted.aws.instance_type == "m5.large"
    assert fitted.aws.ami_id == ("ami-" + "f" * 40)[:32]
    assert fitted.aws.name == "?web"
    assert fitted.aws.tags == {"Team": "x" * 256}
    assert fitted.notes == (
        "AWS tag key: NUL characters removed",
        "AWS tag value: longer than 256 characters, cut",
        "AWS instance type: NUL characters removed",
        "AWS AMI id: longer than 32 characters, cut",
        "AWS Name tag: invalid Unicode replaced",
    )


def test_an_address_that_does_not_parse_is_dropped():
    fitted = _fit(_aws(public_ip="3.3.3.300", private_ip="10.0.0.3\x00"))
    assert fitted.aws.public_ip is None and fitted.aws.private_ip is None
    assert "AWS public IP: '3.3.3.300' is not an IP address, dropped" in fitted.notes
    assert "AWS private IP: '10.0.0.3\\x00' is not an IP address, dropped" in fitted.notes


def test_percentages_must_be_finite_and_within_0_to_100():
    fitted = _fit(_aws(cpu_percent=float("nan"), memory_percent=250.0, disk_percent=-1.0))
    assert (fitted.aws.cpu_percent, fitted.aws.memory_percent, fitted.aws.disk_percent) == (
        None,
        None,
        None,
    )
    assert fitted.notes == (
        "CloudWatch CPU: not a finite number, dropped",
        "CloudWatch memory: 250.0 is outside 0..100, dropped",
        "CloudWatch disk: -1.0 is outside 0..100, dropped",
    )


def test_whole_numbers_must_fit_their_column_and_counts_and_sizes_must_not_be_negative():
    cml = CMLObservation(
        ok=True,
        cml_memory_used=-1,
        cml_memory_total=2**63,
        cml_disk_total=2**62,
        nodes_running=2**31,
        nodes_total=7,
        compute_hosts=({"hostname": "c\x00", "cpu_percent": float("inf"), "nodes_total": -2},),
    )
    fitted = _fit(cml=cml).cml
    assert (fitted.cml_memory_used, fitted.cml_memory_total, fitted.cml_disk_total) == (
        None,
        None,
        2**62,
    )
    assert (fitted.nodes_running, fitted.nodes_total) == (None, 7)
    assert fitted.compute_hosts == ({"hostname": "c", "cpu_percent": None, "nodes_total": None},)


def test_labs_with_an_empty_long_or_repeated_id_are_skipped_and_the_rest_fitted():
    long_ago = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))  # before year 1 in UTC
    labs = (
        LAB,
        LabObservation("", "No id", "", "STARTED", "", 0, 0, None, None),
        LabObservation("x" * 65, "Long id", "", "STARTED", "", 0, 0, None, None),
        LabObservation("lab-1", "Again", "", "STARTED", "", 0, 0, None, None),
        LabObservation(
            "lab-2\x00", "T" * 300, "d\x00", "STARTED", "o" * 200, -1, 2**40, long_ago, None
        ),
    )
    fitted = _fit(cml=CMLObservation(ok=True, labs=labs))
    assert [lab.lab_id for lab in fitted.cml.labs] == ["lab-1", "lab-2"]
    second = fitted.cml.labs[1]
    assert (len(second.title), second.description, len(second.owner)) == (255, "d", 150)
    assert (second.node_count, second.link_count, second.created) == (0, 0, None)
    assert "CML labs: a lab without an id, skipped" in fitted.notes
    assert "CML labs: lab id longer than 64 characters, skipped" in fitted.notes
    assert "CML labs: duplicate lab id lab-1, skipped" in fitted.notes
    assert "CML lab created: '0001-01-01T00:00:00+... is out of range, dropped" in fitted.notes


def test_timestamps_are_kept_in_utc():
    moment = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    lab = LabObservation("lab-1", "Lab", "", "STARTED", "", 0, 0, moment, None)
    fitted = _fit(cml=CMLObservation(ok=True, labs=(lab,)))
    assert fitted.cml.labs[0].created == moment and fitted.cml.labs[0].created.tzinfo == UTC


def test_parse_notes_join_and_many_notes_are_counted_not_listed():
    notes = tuple(f"CML /system_stats computes[] field{n}: not a number (str)" for n in range(15))
    fitted = _fit(cml=CMLObservation(ok=True, notes=notes))
    assert fitted.notes == (*notes[:NOTES_MAX], "and 5 more problems")
    assert fitted.cml.notes == ()


def test_source_errors_are_cleaned_too():
    fitted = fit_observation(WorkerObservation(aws_error="AWS eu-west-1: bad\x00" + "e" * 2000))
    assert "\x00" not in fitted.aws_error and len(fitted.aws_error) == 1000


def test_the_notes_become_the_workers_error():
    worker = Worker(pk=7, region="us-east-1", instance_id="i-0123456789abcdef0")
    fitted = _fit(_aws(public_ip="nope"), CMLObservation(ok=True, cml_version="2.9.1"))
    changes = derive_changes(worker, fitted, "http://127.0.0.1/cml/{instance_id}")
    assert changes["last_error"] == "AWS public IP: 'nope' is not an IP address, dropped"
    assert changes["consecutive_failures"] == 1
