import pytest

from fleet.collection import progress
from fleet.collection.collect import collect
from fleet.models import Change, ChangeKind, CollectionRun
from tests.fleet_fixtures import cml_of, running


@pytest.mark.django_db(transaction=True)
def test_a_running_cycle_publishes_its_progress(
    fleet_workers, fleet_settings, settings, monkeypatch
):
    monkeypatch.setattr(progress, "INTERVAL_SECONDS", 0.1)
    settings.COLLECT_CONCURRENCY = 1
    for worker in running(fleet_settings, fleet_workers):
        cml_of(fleet_settings, worker).latency_ms = 100
    published: list[int] = []  # workers_done as stored by each publication that wrote
    original = progress.ProgressReporter._publish

    def spy(self):
        before = self._published
        original(self)
        if self._published != before:
            published.append(CollectionRun.objects.get(pk=self.run.pk).workers_done)

    monkeypatch.setattr(progress.ProgressReporter, "_publish", spy)
    run = collect()
    assert len(published) >= 2  # it moved while running...
    assert published == sorted(set(published)) and published[-1] <= len(fleet_workers)
    assert run.workers_total == run.workers_done == len(fleet_workers)
    # ...and each step, then the finish, told the live pages once.
    changes = Change.objects.filter(kind=ChangeKind.FLEET).order_by("id")
    assert changes.count() == len(published) + 1
    # the finish also says the cycle added samples: the charts follow it
    assert [c.fields for c in changes] == [["run"]] * len(published) + [["run", "samples"]]


def test_inside_a_transaction_only_the_finish_is_published(fleet_workers):
    run = collect()
    assert run.workers_done == run.workers_total == len(fleet_workers)
    assert Change.objects.filter(kind=ChangeKind.FLEET).count() == 1  # persist's "finished"
