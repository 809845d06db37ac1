"""A simulated fleet for the collection tests, and settings that point the product at it."""

import threading

import pytest
from django.db import connection

from fleet.models import Worker
from simulator.aws import CREDENTIALS
from simulator.fleet import SimulatedFleet


@pytest.fixture(scope="module")
def simulated_fleet():
    with SimulatedFleet(workers=6, stopped=1, regions=["us-east-1", "eu-west-1"]) as fleet:
        yield fleet


@pytest.fixture
def fleet_settings(simulated_fleet, settings, monkeypatch):
    """Point settings at the simulator; reset every fault knob (and licence) afterwards."""
    env = simulated_fleet.environment()
    settings.AWS_ENDPOINT_URL = env["AWS_ENDPOINT_URL"]
    settings.AWS_REGIONS = env["AWS_REGIONS"].split(",")
    settings.CML_ENDPOINT_TEMPLATE = env["CML_ENDPOINT_TEMPLATE"]
    settings.CML_USERNAME = env["CML_USERNAME"]
    settings.CML_PASSWORD = env["CML_PASSWORD"]
    settings.CML_VERIFY_TLS = False
    settings.CML_REQUEST_TIMEOUT_SECONDS = 2
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS["aws_secret_access_key"])
    yield simulated_fleet
    for worker in simulated_fleet.cml.workers():
        worker.reset_faults()


@pytest.fixture
def fleet_workers(fleet_settings, db) -> list[Worker]:
    """One Worker row per simulated instance, as import_workers would make them."""
    return Worker.objects.bulk_create(
        Worker(region=i.region, instance_id=i.instance_id, name=i.name)
        for i in fleet_settings.instances
    )


def cml_of(fleet: SimulatedFleet, worker: Worker):
    return fleet.cml.worker(worker.instance_id)


def running(fleet: SimulatedFleet, workers: list[Worker]) -> list[Worker]:
    up = {i.instance_id for i in fleet.instances if i.running}
    return [w for w in workers if w.instance_id in up]


def terminate_backend_of(pid: int) -> None:
    """End one PostgreSQL session from another connection, as a database restart or a network
    failure would."""

    def kill() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        finally:
            connection.close()

    thread = threading.Thread(target=kill)
    thread.start()
    thread.join(10)
