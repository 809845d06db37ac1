"""The simulated CML's telemetry: the whole history on every call, our sign-ins recorded as
our own user's activity, lab operations recorded, and the active / idle knobs."""

import httpx
import pytest

from fleet.collection.sources.cml_telemetry import parse_timestamp
from simulator.cml_telemetry import user_id
from tests.simulator_fixtures import api_fixture, login, sim_fixture, worker_fixture  # noqa: F401


def events(api, headers):
    response = api.get("/telemetry/events", headers=headers)
    assert response.status_code == 200
    return response.json()


def test_the_history_needs_a_token_and_comes_whole_every_time(api):
    assert api.get("/telemetry/events").status_code == 401
    headers = login(api)
    first, second = events(api, headers), events(api, headers)
    assert first == second and len(first) >= 12
    assert {"category", "timestamp", "data"} <= set(first[0])
    forms = {len(e["timestamp"]) for e in first}
    assert len(forms) >= 3  # several ISO forms: with and without fraction, Z or offset
    assert all(parse_timestamp(e["timestamp"]) is not None for e in first)


def test_our_sign_in_is_our_own_users_activity(api):
    headers = login(api)
    own = api.get("/users/admin/id", headers=headers).json()
    assert own == user_id("admin")
    assert api.get("/users/nobody/id", headers=headers).status_code == 404
    mine = [e for e in events(api, headers) if e["data"].get("user_id") == own]
    assert [e["category"] for e in mine] == ["user_activity"]


def test_lab_operations_are_recorded(api, worker):
    headers = login(api)
    lab_id = next(iter(worker.labs))
    assert api.put(f"/labs/{lab_id}/start", headers=headers).status_code == 204
    assert events(api, headers)[-1]["category"] == "start_lab"


def test_the_active_knob_adds_someone_elses_work_at_each_read(api, sim, worker):
    headers = login(api)
    before = len(events(api, headers))
    worker.set_knobs({"activity": "active"})
    after = events(api, headers)
    assert len(after) == before + 2
    assert after[-1]["data"]["user_id"] == user_id("jdoe")
    worker.set_knobs({"activity": "idle"})
    assert len(events(api, headers)) == len(after)


def test_the_activity_knob_takes_only_its_values(sim, worker):
    url = f"{sim.base_url}/_sim/workers/{worker.instance_id}"
    assert httpx.post(url, json={"activity": "busy"}).status_code == 400
    assert httpx.post(url, json={"activity": None}).status_code == 200
    with pytest.raises(ValueError, match="activity must be one of active, idle or null"):
        worker.set_knobs({"activity": "sleepy"})
