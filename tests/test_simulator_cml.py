"""The simulated CML server: real HTTP, the CML 2.9 shapes, tokens, labs and drift."""

from datetime import datetime

import httpx
import pytest

from simulator.cml import CMLSimulator
from tests.simulator_fixtures import (  # noqa: F401  (fixtures)
    CREDENTIALS,
    api_fixture,
    login,
    sim_fixture,
    worker_fixture,
)

LAB_KEYS = {
    "id", "lab_title", "lab_description", "lab_notes", "state", "owner", "owner_username",
    "owner_fullname", "node_count", "link_count", "created", "modified", "groups",
    "effective_permissions",  # real CML 2.9 sends it too
}  # fmt: skip
AUTHENTICATED_PATHS = [
    "/system_health", "/system_stats", "/licensing", "/labs?show_all=true", "/populate_lab_tiles",
]  # fmt: skip


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
        assert dominfo["total_nodes"] >= dominfo["running_nodes"]
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
