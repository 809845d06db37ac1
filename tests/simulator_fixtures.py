"""Fixtures for the simulated CML server's tests: a started simulator, a worker, an API client.

Import the `*_fixture` functions into a test module; pytest knows them as sim, worker and api.
"""

import httpx
import pytest

from simulator.cml import CMLSimulator, SimulatedCML

PASSWORD = "simulated-password"
CREDENTIALS = {"username": "admin", "password": PASSWORD}


@pytest.fixture(name="sim")
def sim_fixture():
    with CMLSimulator(seed=1) as simulator:
        yield simulator


@pytest.fixture(name="worker")
def worker_fixture(sim: CMLSimulator) -> SimulatedCML:
    return sim.add_worker("i-0abc1234", labs=4)


@pytest.fixture(name="api")
def api_fixture(sim: CMLSimulator, worker: SimulatedCML):
    base_url = sim.endpoint_template.format(instance_id=worker.instance_id) + "/api/v0"
    with httpx.Client(base_url=base_url, timeout=5) as client:
        yield client


def login(api: httpx.Client) -> dict[str, str]:
    token = api.post("/authenticate", json=CREDENTIALS).json()
    return {"Authorization": f"Bearer {token}"}
