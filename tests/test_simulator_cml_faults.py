"""The simulated CML server's faults (502, 500, bad JSON, odd data, body size, latency, hang),
stop() and control API."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from simulator.cml import CMLSimulator
from simulator.cml_worker import BAD_DATA, HUGE_BODY_BYTES
from tests.simulator_fixtures import (  # noqa: F401  (fixtures)
    api_fixture,
    login,
    sim_fixture,
    worker_fixture,
)


def test_a_booting_server_answers_502_everywhere(api, worker):
    headers = login(api)
    worker.not_ready = True

    for response in (api.get("/system_information"), api.get("/system_stats", headers=headers)):
        assert response.status_code == 502
        assert response.headers["content-type"].startswith("text/html")


def test_http_500_answers_every_request_with_a_json_error(api, worker):
    headers = login(api)
    worker.http_500 = True

    for response in (api.get("/system_information"), api.get("/labs", headers=headers)):
        assert response.status_code == 500
        assert response.json()["code"] == 500


def test_malformed_json_answers_200_with_a_body_that_does_not_parse(api, worker):
    headers = login(api)
    worker.malformed_json = True

    for response in (api.get("/system_information"), api.get("/system_stats", headers=headers)):
        assert response.status_code == 200
        with pytest.raises(json.JSONDecodeError):
            json.loads(response.content)


def test_an_empty_body_answers_200_with_nothing(api, worker):
    headers = login(api)
    worker.empty_body = True

    for response in (api.get("/system_information"), api.get("/labs", headers=headers)):
        assert response.status_code == 200 and response.content == b""


def test_a_huge_body_is_valid_json_padded_to_50_mb(api, worker):
    worker.huge_body = True

    response = api.get("/system_information")

    assert response.status_code == 200 and len(response.content) > HUGE_BODY_BYTES
    assert json.loads(response.content)["version"] == worker.version


@pytest.mark.parametrize("bad_data", BAD_DATA)
def test_bad_data_changes_the_answers_but_not_the_stored_labs(api, worker, bad_data):
    headers = login(api)
    clean = {
        path: api.get(path, headers=headers).content
        for path in ("/system_information", "/system_health", "/system_stats", "/labs")
    }
    tiles = api.get("/populate_lab_tiles", headers=headers).json()["lab_tiles"]
    stored = json.dumps(worker.labs, sort_keys=True)
    worker.bad_data = bad_data

    answers = {path: api.get(path, headers=headers) for path in clean}
    bad_tiles = api.get("/populate_lab_tiles", headers=headers).json()["lab_tiles"]

    assert all(answer.status_code == 200 for answer in answers.values())
    assert any(answers[path].content != body for path, body in clean.items()) or (
        bad_tiles != tiles
    )
    assert json.dumps(worker.labs, sort_keys=True) == stored
    for lab_id in answers["/labs"].json():  # every listed lab answers, the odd ones too
        assert api.get(f"/labs/{lab_id}", headers=headers).status_code == 200


def test_latency_delays_every_request(api, worker):
    worker.latency_ms = 200

    started = time.monotonic()
    response = api.get("/system_information")

    assert response.status_code == 200
    assert time.monotonic() - started >= 0.19


def test_a_hung_server_times_out_the_client_until_cleared(api, worker):
    worker.hang = True

    with pytest.raises(httpx.TimeoutException):
        api.get("/system_information", timeout=0.3)
    assert worker.requests["/system_information"] == 1  # counted on arrival

    worker.hang = False
    assert api.get("/system_information").status_code == 200


def test_stop_returns_promptly_while_requests_hang():
    simulator = CMLSimulator()
    simulator.start()
    simulator.add_worker("i-0hung").hang = True
    url = f"{simulator.base_url}/cml/i-0hung/api/v0/system_information"
    outcome: list[BaseException] = []
    client = threading.Thread(target=lambda: _capture(outcome, url), daemon=True)
    client.start()
    time.sleep(0.3)

    started = time.monotonic()
    simulator.stop()

    assert time.monotonic() - started < 3
    client.join(timeout=5)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError)


def _capture(outcome: list[BaseException], url: str) -> None:
    try:
        httpx.get(url, timeout=30)
    except httpx.HTTPError as error:
        outcome.append(error)


def test_many_concurrent_slow_requests_are_all_served(sim):
    for n in range(150):
        sim.add_worker(f"i-{n:08x}").latency_ms = 300

    limits = httpx.Limits(max_connections=150)
    with httpx.Client(base_url=sim.base_url, limits=limits, timeout=30) as client:

        def fetch(n: int) -> int:
            return client.get(f"/cml/i-{n:08x}/api/v0/system_information").status_code

        with ThreadPoolExecutor(max_workers=150) as pool:
            statuses = list(pool.map(fetch, range(150)))

    assert statuses == [200] * 150
    assert sim.requests_served == 150


def test_control_api_lists_and_sets_knobs(sim, worker):
    control = f"{sim.base_url}/_sim"

    listed = httpx.get(f"{control}/workers").json()
    changed = httpx.post(
        f"{control}/workers/{worker.instance_id}", json={"latency_ms": 5, "not_ready": True}
    )

    assert listed[worker.instance_id] == {
        "latency_ms": 0,
        "hang": False,
        "http_500": False,
        "malformed_json": False,
        "not_ready": False,
        "token_ttl_requests": None,
        "bad_data": None,
        "huge_body": False,
        "empty_body": False,
        "activity": None,
    }
    assert changed.status_code == 200
    assert changed.json()["latency_ms"] == 5 and changed.json()["not_ready"] is True
    assert (worker.latency_ms, worker.not_ready) == (5, True)


@pytest.mark.parametrize(
    "body",
    [
        {"no_such_knob": True},
        {"hang": "yes"},
        {"hang": 1},
        {"latency_ms": True},
        {"latency_ms": -1},
        {"latency_ms": 1.5},
        {"bad_data": "no_such_fault"},
        {"bad_data": True},
        {"huge_body": "yes"},
        ["hang"],
    ],
)
def test_control_api_rejects_bad_knobs_with_400(sim, worker, body):
    response = httpx.post(f"{sim.base_url}/_sim/workers/{worker.instance_id}", json=body)

    assert response.status_code == 400
    assert worker.knobs() == {
        "latency_ms": 0,
        "hang": False,
        "http_500": False,
        "malformed_json": False,
        "not_ready": False,
        "token_ttl_requests": None,
        "bad_data": None,
        "huge_body": False,
        "empty_body": False,
        "activity": None,
    }


def test_control_api_rejects_a_body_that_is_not_json(sim, worker):
    response = httpx.post(f"{sim.base_url}/_sim/workers/{worker.instance_id}", content=b"{")

    assert response.status_code == 400


def test_control_api_404s_an_unknown_worker(sim):
    response = httpx.post(f"{sim.base_url}/_sim/workers/i-0nothere", json={"hang": True})

    assert response.status_code == 404


def test_control_api_expires_tokens_and_advances(sim, api, worker):
    headers = login(api)
    labs_before = json.dumps(worker.labs, sort_keys=True)

    expired = httpx.post(f"{sim.base_url}/_sim/workers/{worker.instance_id}/expire_tokens")
    advanced = [httpx.post(f"{sim.base_url}/_sim/advance").status_code for _ in range(10)]

    assert expired.status_code == 204
    assert api.get("/system_stats", headers=headers).status_code == 401
    assert advanced == [204] * 10
    assert json.dumps(worker.labs, sort_keys=True) != labs_before
