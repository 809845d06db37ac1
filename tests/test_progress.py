import pytest

from fleet.collection import progress
from fleet.collection.collect import collect
from fleet.models import FLEET_CHANGE, Change, CollectionRun
from tests.fleet_fixtures import cml_of, running


@pytest.mark.django_db(transaction=True)
def test_a_running_cycle_publishes_its_progress(
    fleet_workers, fleet_settings, settings, monkeypatch
):
    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.1)
    settings.COLLECT_CONCURRENCY = 1
    for worker in running(fleet_settings, fleet_workers):
        cml_of(fleet_settings, worker).latency_ms = 100
    seen: list[int] = []
    original = progress.ProgressReporter._publish

    def spy(self):
        original(self)
        seen.append(CollectionRun.objects.get(pk=self.run.pk).workers_done)

    monkeypatch.setattr(progress.ProgressReporter, "_publish", spy)
    run = collect()
    steps = sorted(set(seen))
    assert len(steps) >= 2 and steps[-1] <= len(fleet_workers)  # it moved while running
    assert run.workers_total == run.workers_done == len(fleet_workers)
    assert Change.objects.filter(worker_id=FLEET_CHANGE, fields=["run"]).count() >= 2


def test_inside_a_transaction_only_the_finish_is_published(fleet_workers):
    run = collect()
    assert run.workers_done == run.workers_total == len(fleet_workers)
    assert Change.objects.filter(worker_id=FLEET_CHANGE).count() == 1  # persist's "finished"
