"""The observe stage: CML read while AWS answers, and what AWS then says decides what is kept."""

import time

from fleet.collection.collect import collect
from fleet.collection.sources.aws import AwsReader
from fleet.models import RunStatus, Worker
from tests.fleet_fixtures import cml_of, running


def stats_asked(fleet, workers) -> dict[int, int]:
    return {w.pk: cml_of(fleet, w).requests["/system_stats"] for w in workers}


def test_workers_seen_running_last_cycle_are_read_while_aws_still_answers(
    fleet_workers, fleet_settings, monkeypatch
):
    collect()  # the first cycle learns which workers run, and at which address
    up = running(fleet_settings, fleet_workers)
    before = stats_asked(fleet_settings, up)
    real_observe = AwsReader.observe
    asked_before_aws_answered = []

    def slow_aws(self, *args, **kwargs):
        """AWS answers only once every running worker's CML was asked (or 10 s passed)."""
        until = time.monotonic() + 10
        while time.monotonic() < until:
            now = stats_asked(fleet_settings, up)
            if all(now[pk] > before[pk] for pk in now):
                break
            time.sleep(0.02)
        asked_before_aws_answered.append(all(now[pk] > before[pk] for pk in now))
        return real_observe(self, *args, **kwargs)

    monkeypatch.setattr(AwsReader, "observe", slow_aws)
    run = collect(kind="full")
    assert asked_before_aws_answered == [True]
    assert run.status == RunStatus.SUCCEEDED and run.workers_failed == 0
    assert run.workers_done == run.workers_total == len(fleet_workers)
    assert stats_asked(fleet_settings, up) == {pk: n + 1 for pk, n in before.items()}  # once
    assert all(w.service_status == "available" for w in Worker.objects.filter(status="running"))


def test_a_worker_that_stopped_since_the_last_cycle_has_its_early_read_discarded(
    fleet_workers, fleet_settings
):
    (stopped,) = [w for w in fleet_workers if w not in running(fleet_settings, fleet_workers)]
    # The last cycle saw it running; its simulated CML still answers, but EC2 says stopped.
    endpoint = fleet_settings.cml.endpoint_template.format(instance_id=stopped.instance_id)
    Worker.objects.filter(pk=stopped.pk).update(status="running", cml_endpoint=endpoint)
    run = collect(kind="full")
    assert run.status == RunStatus.SUCCEEDED and run.workers_failed == 0
    assert run.workers_done == run.workers_total
    stopped.refresh_from_db()
    assert stopped.status == "stopped" and stopped.cml_endpoint == ""
    assert stopped.cml_version == "" and stopped.labs_count is None  # nothing kept from CML
    assert stopped.service_status == "unknown"


def test_a_worker_whose_address_changed_is_read_at_the_new_one(fleet_workers, fleet_settings):
    moved = running(fleet_settings, fleet_workers)[0]
    # The last cycle saw it at an address where nothing listens now (port 1 refuses).
    old = f"http://127.0.0.1:1/cml/{moved.instance_id}"
    Worker.objects.filter(pk=moved.pk).update(status="running", cml_endpoint=old)
    run = collect(kind="full")
    assert run.status == RunStatus.SUCCEEDED and str(moved.pk) not in run.errors
    moved.refresh_from_db()
    assert moved.cml_endpoint != old and moved.cml_endpoint.endswith(moved.instance_id)
    assert moved.service_status == "available" and moved.cml_version == "2.9.1"


def test_a_metrics_cycle_reads_the_licence_only_of_workers_whose_licence_is_unknown(
    fleet_workers, fleet_settings
):
    collect(kind="full")
    unknown, known, *_ = running(fleet_settings, fleet_workers)
    Worker.objects.filter(pk=unknown.pk).update(license_state="unknown")
    asked = {w.pk: cml_of(fleet_settings, w).requests["/licensing"] for w in (unknown, known)}
    collect(kind="metrics")
    assert cml_of(fleet_settings, unknown).requests["/licensing"] == asked[unknown.pk] + 1
    assert cml_of(fleet_settings, known).requests["/licensing"] == asked[known.pk]
    unknown.refresh_from_db()
    assert unknown.license_state == "licensed"


def test_a_bug_in_the_aws_part_fails_the_run_and_leaves_no_read_behind(
    fleet_workers, fleet_settings, monkeypatch
):
    collect()

    def broken(self, *args, **kwargs):
        time.sleep(0.3)  # the early CML reads are under way
        raise RuntimeError("a bug in the AWS part")

    monkeypatch.setattr(AwsReader, "observe", broken)
    run = collect()
    assert run.status == RunStatus.FAILED
    assert run.message == "RuntimeError: a bug in the AWS part"


def test_when_a_region_fails_its_early_reads_are_not_kept(fleet_workers, fleet_settings, settings):
    collect()
    up = running(fleet_settings, fleet_workers)

    def cpu() -> dict[int, float]:
        return {w.pk: w.cml_cpu_percent for w in Worker.objects.filter(pk__in=[w.pk for w in up])}

    before = cpu()
    fleet_settings.cml.advance()  # every CML's figures move on
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens: every region fails
    run = collect()
    assert run.workers_failed == len(fleet_workers)
    assert all(error.startswith("AWS ") for error in run.errors.values())
    assert cpu() == before
    settings.AWS_ENDPOINT_URL = fleet_settings.aws_endpoint_url
    collect()  # AWS answers again: now the new figures are kept
    assert all(cpu()[pk] != value for pk, value in before.items())
