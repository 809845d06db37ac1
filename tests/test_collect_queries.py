"""A cycle's database queries do not grow with the number of workers: 5 cost what 50 cost."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from fleet.collection.collect import collect
from fleet.models import Worker
from simulator.fleet import SimulatedFleet


@pytest.fixture(scope="module")
def simulated_fleet():
    """Overrides the suite's six-worker fleet for this module: fifty running workers."""
    with SimulatedFleet(workers=50, stopped=0, regions=["us-east-1", "eu-west-1"]) as fleet:
        yield fleet


@pytest.mark.postgres  # SQLite splits bulk statements by its bound-parameter limit
@pytest.mark.parametrize("kind", ["metrics", "labs"])
def test_5_and_50_workers_cost_the_same_number_of_queries(fleet_settings, db, kind):
    counts = {}
    for size in (5, 50):
        Worker.objects.all().delete()
        workers = Worker.objects.bulk_create(
            Worker(region=i.region, instance_id=i.instance_id, name=i.name)
            for i in fleet_settings.instances[:size]
        )
        with CaptureQueriesContext(connection) as queries:
            run = collect([w.pk for w in workers], kind=kind)
        assert run.workers_seen == size and run.workers_changed == size
        counts[size] = len(queries)
    assert counts[5] == counts[50], counts
