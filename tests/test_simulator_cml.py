"""The simulated CML server: real HTTP, the CML 2.9 shapes of DESIGN §5, faults and control API."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from fleet.simulator.cml import CMLSimulator, SimulatedCML

PASSWORD = "simulated-password"
CREDENTIALS = {"username": "admin", "password": PASSWORD}
LAB_KEYS = {
    "id", "lab_title", "lab_description", "lab_notes", "state", "owner", "owner_username",
    "owner_fullname", "node_count", "link_count", "created", "modified", "groups",
    "effective_permissions",  # real CML 2.9 sends it too; DESIGN §5 does not list it
}  # fmt: skip
AUTHENTICATED_PATHS = [
    "/system_health", "/system_stats", "/licensing", "/labs?show_all=true", "/populate_lab_tiles",
]  # fmt: skip


@pytest.fixture
def sim():
    with CMLSimulator(seed=1) as simulator:
        yield simulator


@pytest.fixture
def worker(sim: CMLSimulator) -> SimulatedCML:
    return sim.add_worker("i-0abc1234", labs=4)


@pytest.fixture
def api(sim: CMLSimulator, worker: SimulatedCML):
    base_url = sim.endpoint_template.format(instance_id=worker.instance_id) + "/api/v0"
    with httpx.Client(base_url=base_url, timeout=5) as client:
        yield client


def login(api: httpx.Client) -> dict[str, str]:
    token = api.post("/authenticate", json=CREDENTIALS).json()
    return {"Authorization": f"Bearer {token}"}


def test_system_information_needs_no_token(api):
    response = api.get("/system_information")

    assert response.status_code == 200
    assert response.json() == {
        "version": "2.9.1",
        "ready": True,
        "allow_ssh_pubkey_auth": False,
        "oui": None,
    }


def test_authenticate_returns_a_bare_string_token(api, worker):
    response = api.post("/authenticate", json=CREDENTIALS)

    assert response.status_code == 200
    assert isinstance(response.json(), str) and len(response.json()) > 20
    assert worker.authentications == 1


def test_authenticate_rejects_bad_credentials_with_403(api, worker):
    response = api.post("/authenticate", json={"username": "admin", "password": "wrong"})

    assert response.status_code == 403
    assert response.json() == {"code": 403, "description": "Authentication failed!"}
    assert worker.authentications == 0


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"username": "admin"}'])
def test_authenticate_rejects_a_malformed_body_with_400(api, body):
    response = api.post("/authenticate", content=body)

    assert response.status_code == 400
    assert response.json()["code"] == 400


@pytest.mark.parametrize("path", AUTHENTICATED_PATHS)
@pytest.mark.parametrize("authorization", [None, "Bearer unknown-token", "Basic YWRtaW46eA=="])
def test_authenticated_endpoints_answer_401_without_a_valid_token(api, path, authorization):
    headers = {"Authorization": authorization} if authorization else {}

    response = api.get(path, headers=headers)

    assert response.status_code == 401
    assert set(response.json()) == {"code", "description"}


def test_system_health_has_the_cml_keys(api):
    health = api.get("/system_health", headers=login(api)).json()

    assert set(health) == {"valid", "is_licensed", "is_enterprise", "computes", "controller"}
    assert health["is_licensed"] is True and health["valid"] is True
    for compute in health["computes"].values():
        assert {
            "kvm_vmx_enabled", "enough_cpus", "refplat_images_available", "lld_connected",
            "valid", "is_controller", "hostname",
        } <= set(compute)  # fmt: skip
    assert set(health["controller"]) == {"core_connected", "nodes_loaded", "images_loaded", "valid"}


def test_system_stats_has_the_cml_keys_and_consistent_numbers(api, worker):
    stats = api.get("/system_stats", headers=login(api)).json()

    assert set(stats) == {"all", "computes", "controller"}
    assert set(stats["all"]) == {"cpu", "memory", "disk"}
    assert set(stats["all"]["cpu"]) == {"count", "percent"}
    assert set(stats["controller"]) == {"disk"}
    assert [c["is_controller"] for c in stats["computes"].values()][0] is True
    running = sum(lab["node_count"] for lab in worker.labs.values() if lab["state"] == "STARTED")
    dominfo_running = 0
    for compute in stats["computes"].values():
        assert set(compute) == {"hostname", "is_controller", "stats"}
        assert set(compute["stats"]) == {"cpu", "memory", "disk", "dominfo"}
        dominfo = compute["stats"]["dominfo"]
        assert {"allocated_cpus", "allocated_memory", "total_nodes", "running_nodes"} <= set(
            dominfo
        )
        assert dominfo["total_nodes"] >= dominfo["running_nodes"] >= 0
        dominfo_running += dominfo["running_nodes"]
    assert dominfo_running == running
    assert 0 <= stats["all"]["cpu"]["percent"] <= 100
    for usage in (stats["all"]["memory"], stats["all"]["disk"], stats["controller"]["disk"]):
        assert set(usage) == {"total", "free", "used"}
        assert usage["used"] + usage["free"] == usage["total"] > 0


def test_licensing_has_the_cml_keys(api):
    licensing = api.get("/licensing", headers=login(api)).json()

    assert set(licensing) == {
        "registration", "authorization", "reservation_mode", "product_license", "features",
        "transport", "udi",
    }  # fmt: skip
    assert {"status", "expires", "smart_account", "virtual_account", "register_time",
            "renew_time"} == set(licensing["registration"])  # fmt: skip
    assert set(licensing["authorization"]) == {"status", "renew_time", "expires"}
    assert (licensing["registration"]["status"], licensing["authorization"]["status"]) == (
        "COMPLETED",
        "IN_COMPLIANCE",
    )
    assert licensing["product_license"] == {"active": "CML_Enterprise", "is_enterprise": True}
    assert all({"name", "id", "in_use", "status"} <= set(f) for f in licensing["features"])


def test_licence_knobs_show_in_licensing_and_health(api, worker):
    worker.licensed = False
    worker.registration_status = "NOT_REGISTERED"
    worker.authorization_status = "EVAL"
    headers = login(api)

    licensing = api.get("/licensing", headers=headers).json()

    assert licensing["registration"]["status"] == "NOT_REGISTERED"
    assert licensing["authorization"]["status"] == "EVAL"
    assert api.get("/system_health", headers=headers).json()["is_licensed"] is False


def test_labs_lab_and_lab_tiles_agree(api, worker):
    headers = login(api)

    lab_ids = api.get("/labs", params={"show_all": "true"}, headers=headers).json()
    tiles = api.get("/populate_lab_tiles", headers=headers).json()

    assert lab_ids == list(worker.labs) and len(lab_ids) == 4
    assert set(tiles) == {"lab_tiles"} and set(tiles["lab_tiles"]) == set(lab_ids)
    for lab_id in lab_ids:
        lab = api.get(f"/labs/{lab_id}", headers=headers).json()
        assert set(lab) == LAB_KEYS
        assert lab == tiles["lab_tiles"][lab_id]
        assert lab["id"] == lab_id
        assert lab["state"] in {"DEFINED_ON_CORE", "STOPPED", "STARTED"}
        created, modified = map(datetime.fromisoformat, (lab["created"], lab["modified"]))
        assert created.tzinfo is not None and created <= modified
        assert all(set(group) == {"id", "name", "permission"} for group in lab["groups"])


def test_an_unknown_lab_is_404(api):
    response = api.get("/labs/00000000-0000-4000-8000-000000000000", headers=login(api))

    assert response.status_code == 404
    assert response.json()["code"] == 404


def test_an_unknown_worker_or_path_is_404(sim, api):
    unknown_worker = httpx.get(f"{sim.base_url}/cml/i-0nothere/api/v0/system_information")
    unknown_path = api.get("/no_such_endpoint", headers=login(api))
    outside_api = httpx.get(f"{sim.base_url}/elsewhere")

    for response in (unknown_worker, unknown_path, outside_api):
        assert response.status_code == 404
        assert response.json()["code"] == 404


def test_expired_tokens_get_401_and_reauthentication_works(api, worker):
    headers = login(api)
    assert api.get("/system_stats", headers=headers).status_code == 200

    worker.expire_tokens()

    assert api.get("/system_stats", headers=headers).status_code == 401
    assert api.get("/system_stats", headers=login(api)).status_code == 200
    assert worker.authentications == 2


def test_a_token_lasts_token_ttl_requests(api, worker):
    worker.token_ttl_requests = 2
    headers = login(api)

    statuses = [api.get("/licensing", headers=headers).status_code for _ in range(3)]

    assert statuses == [200, 200, 401]
    assert api.get("/licensing", headers=login(api)).status_code == 200


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


def test_requests_are_counted_per_path(api, worker):
    headers = login(api)
    api.get("/system_stats", headers=headers)
    api.get("/system_stats", headers=headers)
    api.get("/labs", headers=headers)

    assert worker.requests == {"/authenticate": 1, "/system_stats": 2, "/labs": 1}
    assert worker.authentications == 1


def test_add_worker_is_idempotent_and_remove_worker_removes(sim, api, worker):
    assert sim.add_worker(worker.instance_id, labs=9) is worker
    assert sim.worker(worker.instance_id) is worker

    sim.remove_worker(worker.instance_id)

    assert api.get("/system_information").status_code == 404
    with pytest.raises(KeyError):
        sim.worker(worker.instance_id)


def lab_history(seed: int, steps: int) -> list[list[tuple[str, str]]]:
    simulator = CMLSimulator(seed=seed)
    worker = simulator.add_worker("i-0drift", labs=5)
    history = []
    for _ in range(steps):
        history.append([(lab_id, lab["state"]) for lab_id, lab in worker.labs.items()])
        simulator.advance()
    return history


def test_advance_changes_labs_deterministically():
    history = lab_history(seed=7, steps=30)

    assert history == lab_history(seed=7, steps=30)
    assert history != lab_history(seed=8, steps=30)
    first_ids = {lab_id for lab_id, _ in history[0]}
    assert any({lab_id for lab_id, _ in step} - first_ids for step in history)  # labs appear
    assert any(first_ids - {lab_id for lab_id, _ in step} for step in history)  # and disappear
    states = [dict(step) for step in history]
    assert any(
        before[lab_id] != after[lab_id]
        for before, after in zip(states, states[1:], strict=False)
        for lab_id in before.keys() & after.keys()
    )  # and change state


def test_advance_drifts_resource_use(api, worker, sim):
    headers = login(api)
    before = api.get("/system_stats", headers=headers).json()["all"]

    for _ in range(3):
        sim.advance()

    after = api.get("/system_stats", headers=headers).json()["all"]
    assert after["cpu"]["percent"] != before["cpu"]["percent"]
    assert after["memory"]["used"] != before["memory"]["used"]


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
