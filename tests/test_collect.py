"""The one collection path against the simulated fleet (moto server + simulated CML)."""

import contextlib
import socket
import threading

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from fleet.collection.collect import FLEET_LOCK, collect
from fleet.collection.locks import exclusive
from fleet.models import Change, ChangeKind, CollectionRun, Lab, RunStatus, Worker
from tests.fleet_fixtures import cml_of, running


def _by_instance(workers):
    return {w.instance_id: w for w in Worker.objects.filter(pk__in=[w.pk for w in workers])}


def test_a_cycle_observes_every_worker_and_saves_what_it_saw(fleet_workers, fleet_settings):
    run = collect(kind="full")
    assert run.status == RunStatus.SUCCEEDED, run.message
    assert run.workers_seen == len(fleet_workers) and run.workers_failed == 0
    assert run.aws_calls <= 3 * 2  # 2 regions, well under 100 workers each
    saved = _by_instance(fleet_workers)
    for instance in fleet_settings.instances:
        worker = saved[instance.instance_id]
        assert worker.last_polled_at is not None
        if instance.running:
            sim = fleet_settings.cml.worker(instance.instance_id)
            assert worker.status == "running"
            assert worker.service_status == "available"
            assert worker.cml_version == "2.9.1" and worker.cml_ready is True
            assert worker.license_state == "licensed"
            assert worker.public_ip and worker.cml_endpoint.endswith(instance.instance_id)
            assert worker.cpu_percent is not None
            assert worker.labs_count == len(sim.labs)
            assert set(worker.labs.values_list("lab_id", flat=True)) == set(sim.labs)
        else:
            assert worker.status == "stopped"
            assert worker.service_status == "unknown" and worker.cml_endpoint == ""


def test_an_unchanged_fleet_writes_no_worker_and_logs_no_change(fleet_workers, fleet_settings):
    collect(kind="full")
    worker_changes = Change.objects.exclude(kind=ChangeKind.FLEET)
    changes = worker_changes.count()
    with CaptureQueriesContext(connection) as queries:
        run = collect(kind="full")
    assert run.workers_changed == 0
    assert worker_changes.count() == changes
    writes = [
        q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "fleet_worker" in q["sql"]
    ]
    # Only the one statement that stamps last_polled_at/labs_polled_at on every worker seen.
    assert all("polled_at" in sql and "CASE" not in sql for sql in writes)


def test_queries_per_cycle_do_not_grow_with_the_number_of_workers(fleet_settings, db):
    instances = [i for i in fleet_settings.instances if i.running]
    counts = []
    for size in (1, len(instances)):
        Worker.objects.all().delete()
        workers = Worker.objects.bulk_create(
            Worker(region=i.region, instance_id=i.instance_id) for i in instances[:size]
        )
        with CaptureQueriesContext(connection) as queries:
            run = collect([w.pk for w in workers], kind="full")
        assert run.workers_seen == size and run.workers_changed == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_lab_changes_are_upserted_and_vanished_labs_deleted(fleet_workers, fleet_settings):
    worker = running(fleet_settings, fleet_workers)[0]
    collect([worker.pk], kind="full")
    sim = cml_of(fleet_settings, worker)
    with sim.lock:
        gone = next(iter(sim.labs))
        del sim.labs[gone]
    collect([worker.pk], kind="full")
    assert not Lab.objects.filter(worker=worker, lab_id=gone).exists()
    assert Lab.objects.filter(worker=worker).count() == len(sim.labs)
    assert any("labs" in c.fields for c in Change.objects.filter(worker_id=worker.pk))


def test_a_lab_whose_state_or_title_changed_is_updated(fleet_workers, fleet_settings):
    worker = running(fleet_settings, fleet_workers)[0]
    collect([worker.pk], kind="full")
    sim = cml_of(fleet_settings, worker)
    with sim.lock:
        lab_id, lab = next(iter(sim.labs.items()))
        lab["lab_title"] = "Renamed lab"
        lab["state"] = "STOPPED" if lab["state"] != "STOPPED" else "STARTED"
        lab["node_count"] += 1
    collect([worker.pk], kind="full")
    stored = Lab.objects.get(worker=worker, lab_id=lab_id)
    assert (stored.title, stored.state, stored.node_count) == (
        "Renamed lab",
        lab["state"],
        lab["node_count"],
    )
    assert any("labs" in c.fields for c in Change.objects.filter(worker_id=worker.pk))


def test_a_metrics_cycle_does_not_touch_labs(fleet_workers, fleet_settings):
    collect(kind="metrics")
    assert not Lab.objects.exists()
    assert Worker.objects.filter(labs_polled_at__isnull=False).count() == 0


@pytest.mark.parametrize(
    ("knobs", "status", "error"),
    [
        ({"http_500": True}, "unavailable", "HTTP 500"),
        ({"malformed_json": True}, "unavailable", "invalid JSON"),
        ({"not_ready": True}, "unavailable", "not ready"),
        ({"hang": True}, "unavailable", "timeout"),
    ],
)
def test_one_failing_cml_is_recorded_on_its_worker_and_the_rest_are_collected(
    fleet_workers, fleet_settings, settings, knobs, status, error
):
    settings.CML_REQUEST_TIMEOUT_SECONDS = 0.5
    bad, *good = running(fleet_settings, fleet_workers)
    cml_of(fleet_settings, bad).set_knobs(knobs)
    run = collect()
    assert run.status == RunStatus.SUCCEEDED
    assert run.workers_failed == 1 and error in run.errors[str(bad.pk)]
    bad.refresh_from_db()
    assert bad.service_status == status
    assert error in bad.last_error and bad.consecutive_failures == 1
    for worker in good:
        worker.refresh_from_db()
        assert worker.service_status == "available" and worker.last_error == ""


def test_an_expired_token_is_renewed_once(fleet_workers, fleet_settings):
    worker = running(fleet_settings, fleet_workers)[0]
    collect([worker.pk])
    sim = cml_of(fleet_settings, worker)
    before = sim.authentications
    sim.expire_tokens()
    collect([worker.pk])
    worker.refresh_from_db()
    assert worker.service_status == "available"
    assert sim.authentications == before + 1


def test_a_token_rejected_every_time_is_an_error_not_a_loop(fleet_workers, fleet_settings):
    worker = running(fleet_settings, fleet_workers)[0]
    sim = cml_of(fleet_settings, worker)
    sim.token_ttl_requests = 0
    before = sim.authentications
    collect([worker.pk])
    worker.refresh_from_db()
    assert "401" in worker.last_error
    assert sim.authentications - before <= 2


def test_cached_tokens_are_reused_across_cycles(fleet_workers, fleet_settings):
    worker = running(fleet_settings, fleet_workers)[0]
    collect([worker.pk])
    sim = cml_of(fleet_settings, worker)
    before = sim.authentications
    collect([worker.pk])
    assert sim.authentications == before


def test_a_refused_connection_makes_cml_unavailable(fleet_workers, fleet_settings, settings):
    settings.CML_ENDPOINT_TEMPLATE = "http://127.0.0.1:9/cml/{instance_id}"  # discard port: closed
    run = collect()
    up = running(fleet_settings, fleet_workers)
    assert run.workers_failed == len(up)
    for worker in up:
        worker.refresh_from_db()
        assert worker.service_status == "unavailable"
        assert "cannot connect" in worker.last_error


def test_a_vanished_instance_becomes_terminated_without_failing_its_batch(
    fleet_workers, fleet_settings
):
    ghost = Worker.objects.create(region="us-east-1", instance_id="i-0fffffffffffffff0")
    run = collect()
    ghost.refresh_from_db()
    assert ghost.status == "terminated" and "not found" in ghost.last_error
    assert run.workers_failed == 1
    assert Worker.objects.filter(status="running").count() == len(
        running(fleet_settings, fleet_workers)
    )


def test_an_unreachable_aws_region_is_recorded_and_other_regions_collected(
    fleet_workers, fleet_settings, settings
):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"
    run = collect()
    assert run.status == RunStatus.SUCCEEDED
    assert run.workers_failed == len(fleet_workers)
    assert all("AWS" in error for error in run.errors.values())


def test_aws_that_never_answers_is_a_region_error_by_the_deadline(
    fleet_workers, fleet_settings, settings
):
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        settings.AWS_DEADLINE_SECONDS = 2
        run = collect()
    assert run.status == RunStatus.SUCCEEDED
    assert run.workers_failed == len(fleet_workers)
    for worker in fleet_workers:
        worker.refresh_from_db()
        assert worker.last_error == (
            f"AWS {worker.region}: no answer within the AWS deadline of 2s"
        )


def test_a_database_error_writes_nothing_and_marks_the_run_failed(
    fleet_workers, fleet_settings, monkeypatch
):
    def broken(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(Lab.objects, "bulk_create", broken)
    run = collect(kind="full")
    assert run.status == RunStatus.FAILED and "disk full" in run.message
    assert not Change.objects.exclude(kind=ChangeKind.FLEET).exists()
    assert Change.objects.filter(kind=ChangeKind.FLEET).count() == 1  # the progress line's end
    assert not Worker.objects.exclude(status="unknown").exists()
    assert not Worker.objects.filter(last_polled_at__isnull=False).exists()


@contextlib.contextmanager
def another_cycle_running():
    """Hold the collection lock from another thread (so another database connection), as a
    cycle in another process would; yields the event that ends that cycle."""
    held, release = threading.Event(), threading.Event()

    def other_cycle():
        with exclusive(FLEET_LOCK) as got:
            assert got
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_cycle)
    thread.start()
    try:
        assert held.wait(10)
        yield release
    finally:
        release.set()
        thread.join()


@pytest.mark.django_db(transaction=True)
def test_a_cycle_started_while_another_runs_is_recorded_as_skipped(fleet_workers, settings):
    settings.COLLECT_LOCK_WAIT_SECONDS = 1
    with another_cycle_running():
        run = collect()
    assert run.status == RunStatus.SKIPPED
    assert "another collection" in run.message
    assert CollectionRun.objects.filter(status=RunStatus.SKIPPED).count() == 1
    assert collect().status == RunStatus.SUCCEEDED  # the lock was released


def test_the_cycle_deadline_ends_the_cml_phase_for_workers_still_waiting(
    fleet_workers, fleet_settings, settings
):
    settings.COLLECT_CONCURRENCY = 1
    settings.COLLECT_CYCLE_DEADLINE_SECONDS = 2
    settings.CML_REQUEST_TIMEOUT_SECONDS = 30  # the cycle's deadline, not a request's, ends it
    first, *stuck = running(fleet_settings, fleet_workers)  # observed in this order, one at once
    cml_of(fleet_settings, stuck[0]).hang = True  # holds the only slot past the deadline
    run = collect()
    assert run.status == RunStatus.SUCCEEDED
    assert str(first.pk) not in run.errors  # done well before the deadline
    late = {pk for pk, e in run.errors.items() if "the cycle's deadline of 2s was reached" in e}
    assert late == {str(worker.pk) for worker in stuck}  # the hung one and all still waiting


def test_the_licence_is_read_by_full_cycles_and_while_unknown(fleet_workers, fleet_settings):
    worker = running(fleet_settings, fleet_workers)[0]
    sim = cml_of(fleet_settings, worker)
    collect([worker.pk], kind="metrics")  # unknown so far: read even by a metrics cycle
    worker.refresh_from_db()
    assert worker.license_state == "licensed"
    sim.authorization_status = "OUT_OF_COMPLIANCE"
    asked = sim.requests["/licensing"]
    collect([worker.pk], kind="metrics")
    worker.refresh_from_db()
    assert worker.license_state == "licensed" and sim.requests["/licensing"] == asked
    collect([worker.pk], kind="full")
    worker.refresh_from_db()
    assert worker.license_state == "out_of_compliance"


@pytest.mark.django_db(transaction=True)
def test_a_cycle_due_just_as_another_ends_waits_for_it_and_runs(fleet_workers, settings):
    settings.COLLECT_LOCK_WAIT_SECONDS = 30
    with another_cycle_running() as release:
        threading.Timer(1.0, release.set).start()  # the other cycle ends a second later
        run = collect(kind="full")
    assert run.status == RunStatus.SUCCEEDED
