"""Fixtures for the action tests: the simulated fleet collected once, instance states put back
after each test, and django-q2's queue run here instead of by a cluster."""

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.utils.module_loading import import_string
from django_q.models import OrmQ

from fleet.collection.collect import collect
from fleet.models import Worker
from simulator.aws import aws_client


@pytest.fixture
def collected(fleet_workers, fleet_settings):
    """The fleet's workers after one full cycle (statuses, CML endpoints and labs known);
    afterwards every instance is back in its seeded state."""
    if asyncio._get_running_loop() is None:
        collect(kind="full")
    else:  # under Playwright's loop (browser tests, committed data): a thread of its own

        def run():
            try:
                collect(kind="full")
            finally:
                connection.close()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(run).result()
    yield [Worker.objects.get(pk=w.pk) for w in fleet_workers]
    url = fleet_settings.aws_endpoint_url
    for instance in fleet_settings.instances:
        ec2 = aws_client("ec2", instance.region, url)
        if instance.running:
            ec2.start_instances(InstanceIds=[instance.instance_id])
        else:
            ec2.stop_instances(InstanceIds=[instance.instance_id])


def of_state(workers: list[Worker], status: str) -> Worker:
    return next(w for w in workers if w.status == status)


def run_queued() -> list:
    """Run every queued django-q2 task now, in this thread (what a cluster would do)."""
    results = []
    for queued in OrmQ.objects.order_by("pk"):
        task = queued.task
        queued.delete()
        results.append(import_string(task["func"])(*task["args"], **task["kwargs"]))
    return results
