"""One worker's fault never blinds the monitor: a full (labs) cycle on PostgreSQL, where the
column constraints bite, with each fault class injected into one of several simulated workers
through the simulator's own knobs. The run succeeds, every other worker is written, and the
victim's row names its fault."""

import pytest

from fleet.collection import collect as collect_module
from fleet.collection.collect import collect
from fleet.models import RunStatus, Worker
from simulator.cml_worker import BAD_DATA
from simulator.fleet import SimulatedFleet
from tests.fleet_fixtures import cml_of

pytestmark = pytest.mark.postgres

# CML fault knobs → what the victim's last_error must say.
CML_FAULTS = [
    ({"bad_data": "nul_bytes"}, "CML lab title: NUL characters removed"),
    ({"bad_data": "long_strings"}, "CML lab title: longer than 255 characters, cut"),
    ({"bad_data": "negative_numbers"}, "running nodes: -5 is outside 0..2147483647"),
    ({"bad_data": "huge_numbers"}, "total nodes: 1000000000000 is outside 0..2147483647"),
    ({"bad_data": "non_finite"}, "all.cpu.percent: not a finite number"),
    ({"bad_data": "wrong_types"}, "all.cpu.percent: not a number (str)"),
    ({"bad_data": "long_lab_id"}, "CML labs: lab id longer than 64 characters, skipped"),
    ({"bad_data": "duplicate_lab_ids"}, "CML labs: duplicate lab id"),
    ({"huge_body": True}, "answered more than 5 MB"),
    ({"empty_body": True}, "answered an empty body"),
    ({"malformed_json": True}, "invalid JSON"),
    ({"http_500": True}, "HTTP 500"),
    ({"not_ready": True}, "not ready"),
    ({"hang": True}, "timeout"),
]


@pytest.fixture(scope="module")
def simulated_fleet():
    """Overrides the suite's fleet for this module: six running workers in two regions."""
    with SimulatedFleet(workers=6, stopped=0, regions=["us-east-1", "eu-west-1"]) as fleet:
        yield fleet


@pytest.fixture
def victim(fleet_workers) -> Worker:
    return fleet_workers[2]


def assert_others_written(fleet: SimulatedFleet, workers: list[Worker], victim: Worker) -> None:
    for worker in workers:
        if worker.pk == victim.pk:
            continue
        worker.refresh_from_db()
        sim = cml_of(fleet, worker)
        assert worker.last_polled_at is not None and worker.labs_polled_at is not None
        assert worker.status == "running" and worker.service_status == "available"
        assert worker.last_error == "", worker.last_error
        assert worker.cml_version == "2.9.1" and worker.nodes_total is not None
        assert set(worker.labs.values_list("lab_id", flat=True)) == set(sim.labs)


@pytest.mark.parametrize(
    ("knobs", "error"),
    CML_FAULTS,
    ids=[str(v) if v is not True else k for knobs, _ in CML_FAULTS for k, v in knobs.items()],
)
def test_a_cml_fault_on_one_worker_is_its_error_and_the_others_are_written(
    fleet_settings, fleet_workers, victim, settings, knobs, error
):
    if "hang" in knobs:
        settings.CML_REQUEST_TIMEOUT_SECONDS = 1  # a hung worker costs a timeout a call
    cml_of(fleet_settings, victim).set_knobs(knobs)

    run = collect(kind="full")

    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.workers_failed == 1 and error in run.errors[str(victim.pk)]
    victim.refresh_from_db()
    assert error in victim.last_error and victim.consecutive_failures == 1
    assert victim.last_polled_at is not None
    assert_others_written(fleet_settings, fleet_workers, victim)


@pytest.mark.parametrize("bad_data", BAD_DATA)
def test_hostile_data_is_cleaned_and_the_rest_of_the_worker_is_written(
    fleet_settings, fleet_workers, victim, bad_data
):
    sim = cml_of(fleet_settings, victim)
    sim.bad_data = bad_data

    collect(kind="full")

    victim.refresh_from_db()
    assert victim.service_status == "available" and victim.cml_version.startswith("2.9.1")
    assert set(victim.labs.values_list("lab_id", flat=True)) == set(sim.labs)
    assert victim.labs_count == len(sim.labs)
    assert "\x00" not in "".join(victim.labs.values_list("title", flat=True))


def test_an_aws_fault_on_one_worker_is_its_error_and_the_others_are_written(
    fleet_settings, fleet_workers, victim
):
    fleet_settings.set_aws_fault(victim.instance_id, "long_name_tag")
    try:
        run = collect(kind="full")
    finally:
        fleet_settings.set_aws_fault(victim.instance_id, None)

    assert run.status == RunStatus.SUCCEEDED, run.message
    assert "AWS Name tag: longer than 255 characters, cut" in run.errors[str(victim.pk)]
    victim.refresh_from_db()
    assert victim.name == "N" * 255 and victim.service_status == "available"
    assert_others_written(fleet_settings, fleet_workers, victim)


@pytest.mark.parametrize(
    ("bad_data", "refusal"),
    [
        ("negative_numbers", "violates check constraint"),
        ("huge_numbers", "out of range"),
        ("nul_bytes", "unsupported Unicode escape sequence"),  # jsonb: \\u0000
        ("long_lab_id", "value too long"),
        ("duplicate_lab_ids", "cannot affect row a second time"),
    ],
)
def test_a_value_the_cleaning_misses_fails_its_worker_alone_with_the_databases_message(
    fleet_settings, fleet_workers, victim, monkeypatch, bad_data, refusal
):
    """Should `fit` miss a case, the database's refusal is that worker's error alone."""
    monkeypatch.setattr(collect_module, "fit_observation", lambda seen: seen)
    cml_of(fleet_settings, victim).bad_data = bad_data

    run = collect(kind="full")

    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.workers_failed == 1
    assert "database refused this worker's data" in run.errors[str(victim.pk)]
    assert refusal in run.errors[str(victim.pk)]
    victim.refresh_from_db()
    assert refusal in victim.last_error and victim.consecutive_failures == 1
    assert victim.last_polled_at is not None and victim.labs_polled_at is None
    assert_others_written(fleet_settings, fleet_workers, victim)
