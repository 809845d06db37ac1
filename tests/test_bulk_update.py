"""Writing many workers' changed fields at once: the same rows as Django's `bulk_update`, in one
statement per batch and without CASE/WHEN on PostgreSQL; a refused value still raises."""

from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from fleet.collection.bulk_update import bulk_update
from fleet.collection.persist import REFUSED_VALUE_ERRORS
from fleet.models import Worker

FIELDS = [
    "name",
    "status",
    "public_ip",
    "tags",
    "cpu_percent",
    "cml_ready",
    "cml_memory_total",
    "nodes_running",
    "compute_hosts",
    "last_polled_at",
    "last_error",
]


def fleet(n: int, region: str = "us-east-1") -> list[Worker]:
    return Worker.objects.bulk_create(
        Worker(name=f"w{i}", region=region, instance_id=f"i-{i:08x}") for i in range(n)
    )


def changed(workers: list[Worker]) -> list[Worker]:
    """Every field type a cycle writes, nulls and quoting hazards included."""
    for n, worker in enumerate(workers):
        worker.name = f'it\'s "{n}" ; --'
        worker.status = "running"
        worker.public_ip = None if n % 2 else f"10.0.0.{n}"
        worker.tags = {"Name": f"w{n}", "Team": "net"}
        worker.cpu_percent = None if n % 3 == 0 else n + 0.5
        worker.cml_ready = [True, False, None][n % 3]
        worker.cml_memory_total = 64 * 2**30 + n  # past 32 bits
        worker.nodes_running = n
        worker.compute_hosts = [{"hostname": "cc", "is_controller": True}]
        worker.last_polled_at = datetime(2026, 1, 2, 3, 4, n % 60, tzinfo=UTC)
        worker.last_error = "" if n % 2 else "CML /labs: timeout\nsecond line"
    return workers


def stored(pks) -> list[tuple]:
    return list(Worker.objects.filter(pk__in=pks).order_by("pk").values_list("pk", *FIELDS))


@pytest.mark.django_db
def test_it_writes_what_djangos_bulk_update_writes():
    ours, theirs = fleet(7), fleet(7, "eu-west-1")
    bulk_update(changed(ours), FIELDS, batch_size=3)
    Worker.objects.bulk_update(changed(theirs), FIELDS, batch_size=3)
    assert [row[1:] for row in stored([w.pk for w in ours])] == [
        row[1:] for row in stored([w.pk for w in theirs])
    ]
    untouched = Worker.objects.get(pk=ours[0].pk)
    assert untouched.region == "us-east-1" and untouched.instance_id == "i-00000000"


@pytest.mark.postgres
@pytest.mark.django_db
def test_on_postgresql_one_statement_per_batch_and_no_case_when():
    workers = changed(fleet(7))
    with CaptureQueriesContext(connection) as queries:
        bulk_update(workers, FIELDS, batch_size=3)
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 3  # 3 + 3 + 1
    assert all("FROM (VALUES" in sql and "CASE" not in sql for sql in updates)


@pytest.mark.django_db
@pytest.mark.parametrize("value", [-1, 2**70])  # the column's check; no integer type holds it
def test_a_value_the_database_refuses_raises_as_before(value):
    """Persist's fallback (worker by worker, in savepoints) starts from these errors."""
    (worker,) = fleet(1)
    worker.nodes_running = value
    with pytest.raises(REFUSED_VALUE_ERRORS), transaction.atomic():
        bulk_update([worker], ["nodes_running"], batch_size=10)
    assert Worker.objects.get(pk=worker.pk).nodes_running is None


def test_nothing_to_write_touches_nothing(django_assert_num_queries, db):
    with django_assert_num_queries(0):
        bulk_update([], ["name"], batch_size=10)
