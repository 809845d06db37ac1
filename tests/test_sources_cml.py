"""The CML source against the simulated CML server (and a scripted one where it can't)."""

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from fleet.collection.sources import cml
from fleet.collection.sources.cml import CMLTarget, observe_cml
from fleet.collection.sources.cml_parse import license_state
from simulator.cml import CMLSimulator
from tests.loopback import serving

PASSWORD = "simulated-password"


@pytest.fixture
def sim():
    with CMLSimulator(password=PASSWORD) as simulator:
        yield simulator


def target(sim: CMLSimulator, instance_id: str, key: int = 1) -> CMLTarget:
    return CMLTarget(key, f"{sim.base_url}/cml/{instance_id}")


def observe(targets: list[CMLTarget], **options) -> dict:
    defaults = {
        "username": "admin",
        "password": PASSWORD,
        "verify_tls": False,
        "read_labs": True,
        "request_timeout": 5.0,
    }
    return asyncio.run(observe_cml(targets, **{**defaults, **options}))


def test_it_reads_everything(sim):
    worker = sim.add_worker("i-0aaa", labs=3)

    result = observe([target(sim, "i-0aaa", key=7)])[7]

    assert result.ok and result.error == ""
    assert (result.cml_version, result.cml_ready) == ("2.9.1", True)
    assert result.license_state == "licensed"
    assert 0 <= result.cml_cpu_percent <= 100
    assert 0 < result.cml_memory_used < result.cml_memory_total
    assert 0 < result.cml_disk_used < result.cml_disk_total
    labs = worker.labs.values()
    assert result.nodes_running == sum(
        lab["node_count"] for lab in labs if lab["state"] == "STARTED"
    )
    assert result.nodes_total == sum(
        lab["node_count"] for lab in labs if lab["state"] != "DEFINED_ON_CORE"
    )
    assert {host["hostname"] for host in result.compute_hosts} == {
        compute.hostname for compute in worker.computes
    }
    assert result.compute_hosts[0]["is_controller"] is True
    assert {lab.lab_id for lab in result.labs} == set(worker.labs)
    for lab in result.labs:
        source = worker.labs[lab.lab_id]
        assert (lab.title, lab.state, lab.owner) == (
            source["lab_title"],
            source["state"],
            source["owner_username"],
        )
        assert (lab.node_count, lab.link_count) == (source["node_count"], source["link_count"])
        assert lab.created.tzinfo is not None and lab.created <= lab.modified
        assert lab.created.astimezone(UTC).isoformat(timespec="seconds") == source["created"]
    assert worker.authentications == 1
    assert all(count == 1 for count in worker.requests.values())


def test_labs_are_read_only_when_asked(sim):
    worker = sim.add_worker("i-0aaa", labs=2)

    result = observe([target(sim, "i-0aaa")], read_labs=False)[1]

    assert result.ok and result.labs is None
    assert worker.requests["/populate_lab_tiles"] == 0


def test_a_hung_worker_times_out_and_the_others_are_fine(sim):
    sim.add_worker("i-0aaa").hang = True
    sim.add_worker("i-0bbb")

    # A timeout the healthy worker's requests meet even on a loaded machine.
    results = observe([target(sim, "i-0aaa", 1), target(sim, "i-0bbb", 2)], request_timeout=1)

    assert not results[1].ok
    assert results[1].error == "timeout after 1s from /system_information"
    assert results[2].ok and results[2].error == ""


def test_http_500(sim):
    sim.add_worker("i-0aaa").http_500 = True

    result = observe([target(sim, "i-0aaa")])[1]

    assert not result.ok and result.error == "HTTP 500 from /system_information"


def test_malformed_json(sim):
    sim.add_worker("i-0aaa").malformed_json = True

    result = observe([target(sim, "i-0aaa")])[1]

    assert not result.ok and result.error == "invalid JSON from /system_information"


def test_an_expired_token_is_renewed_once(sim):
    worker = sim.add_worker("i-0aaa", labs=2)
    tokens: dict[str, str] = {}
    observe([target(sim, "i-0aaa")], tokens=tokens)
    old_token = tokens[target(sim, "i-0aaa").endpoint]
    worker.expire_tokens()

    result = observe([target(sim, "i-0aaa")], tokens=tokens)[1]

    # Health, stats, licensing and labs all got 401 at once; they share one re-authentication.
    assert result.ok and len(result.labs) == 2
    assert worker.authentications == 2
    assert tokens[target(sim, "i-0aaa").endpoint] != old_token


def test_a_token_rejected_every_time_fails_after_one_retry(sim):
    worker = sim.add_worker("i-0aaa")
    worker.token_ttl_requests = 0  # every token is refused

    result = observe([target(sim, "i-0aaa")])[1]

    assert not result.ok and "authentication rejected (401)" in result.error
    assert result.cml_version == "2.9.1"
    assert worker.authentications == 2
    assert worker.requests["/system_health"] == 2  # the call and its one retry, no loop


def test_a_bad_password(sim):
    worker = sim.add_worker("i-0aaa")

    result = observe([target(sim, "i-0aaa")], password="wrong")[1]

    assert not result.ok
    assert result.error == "authentication failed (403): check CML_USERNAME/CML_PASSWORD"
    assert result.cml_version == "2.9.1"
    assert worker.requests["/system_health"] == 0


def test_a_booting_worker_is_not_ready(sim):
    worker = sim.add_worker("i-0aaa")
    worker.not_ready = True

    result = observe([target(sim, "i-0aaa")])[1]

    assert not result.ok and result.error == "not ready (HTTP 502)"
    assert result.cml_ready is False
    assert worker.requests["/system_health"] == 0


def test_connection_refused():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    result = observe([CMLTarget(1, f"http://127.0.0.1:{port}")])[1]

    assert not result.ok
    assert result.error.startswith(f"cannot connect to http://127.0.0.1:{port}:")


def test_a_cached_token_is_reused(sim):
    worker = sim.add_worker("i-0aaa")
    tokens: dict[str, str] = {}

    first = observe([target(sim, "i-0aaa")], tokens=tokens)[1]
    second = observe([target(sim, "i-0aaa")], tokens=tokens)[1]

    assert first.ok and second.ok
    assert worker.authentications == 1 and worker.requests["/authenticate"] == 1
    assert list(tokens) == [target(sim, "i-0aaa").endpoint]


def test_the_worker_deadline(sim):
    sim.add_worker("i-0aaa").hang = True
    sim.add_worker("i-0bbb")

    results = observe(
        [target(sim, "i-0aaa", 1), target(sim, "i-0bbb", 2)],
        request_timeout=30,
        worker_deadline=1.5,  # the healthy worker meets it even on a loaded machine
    )

    assert not results[1].ok and results[1].error == "deadline of 1.5s exceeded"
    assert results[2].ok


def test_the_concurrency_bound(sim, monkeypatch):
    for n in range(10):
        sim.add_worker(f"i-{n:08x}").latency_ms = 30
    in_flight, peak = 0, 0
    observe_worker = cml._observe_worker

    async def counting(*args, **kwargs):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await observe_worker(*args, **kwargs)
        finally:
            in_flight -= 1

    monkeypatch.setattr(cml, "_observe_worker", counting)

    results = observe([target(sim, f"i-{n:08x}", n) for n in range(10)], concurrency=2)

    assert all(result.ok for result in results.values()) and len(results) == 10
    assert peak == 2


# --- Cases the simulator cannot produce, against a scripted CML on loopback ------------------


class FakeCML(ThreadingHTTPServer):
    """A healthy CML 2.9 on loopback whose answers a test rewrites: `answers` maps a path to
    (status, payload), where payload is JSON, raw bytes, or an iterator of bytes sent chunked;
    `seen` lists the paths asked, in order."""

    daemon_threads = True

    def __init__(self) -> None:
        self.answers = {
            "/authenticate": (200, "token-1"),
            "/system_information": (200, {"version": "2.9.0", "ready": True}),
            "/system_health": (200, {"valid": True}),
            "/system_stats": (200, {"all": {"cpu": {"percent": 12.5}}}),
            "/licensing": (200, {"authorization": {"status": "EVAL"}}),
            "/populate_lab_tiles": (200, {"lab_tiles": {}}),
        }
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), _FakeHandler)

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client hanging up is expected
            super().handle_error(request, client_address)  # type: ignore[arg-type]

    @property
    def targets(self) -> list[CMLTarget]:
        return [CMLTarget(1, f"http://127.0.0.1:{self.server_address[1]}")]


class _FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeCML

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.removeprefix("/api/v0")
        self.server.seen.append(path)
        status, payload = self.server.answers.get(path, (404, {"description": "Not found"}))
        self.send_response(status)
        if isinstance(payload, Iterator):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            with contextlib.suppress(OSError):  # the client hangs up once it has read enough
                for chunk in payload:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            return
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake():
    with serving(FakeCML()) as server:
        yield server


@pytest.mark.parametrize("status", [404, 405])
def test_labs_fall_back_to_one_call_a_lab_on_older_cml(fake, status):
    lab = {"id": "a", "lab_title": "A", "state": "STARTED", "owner": "admin", "node_count": 3}
    fake.answers.update(
        {"/populate_lab_tiles": (status, {}), "/labs": (200, ["a", "b"]), "/labs/a": (200, lab)}
    )

    result = observe(fake.targets)[1]

    assert result.ok and result.error == ""
    assert [(lab.lab_id, lab.title, lab.owner, lab.node_count) for lab in result.labs] == [
        ("a", "A", "admin", 3)  # b was deleted between the list and its read: skipped
    ]
    assert {"/labs", "/labs/a", "/labs/b"} <= set(fake.seen)


def test_ready_false_is_not_ready(fake):
    fake.answers["/system_information"] = (200, {"version": "2.9.1", "ready": False})

    result = observe(fake.targets)[1]

    assert not result.ok and (result.cml_version, result.cml_ready) == ("2.9.1", False)
    assert "/system_health" not in fake.seen


def test_a_failed_required_call_keeps_what_was_read(fake):
    fake.answers["/system_stats"] = (500, {"description": "boom"})

    result = observe(fake.targets)[1]

    assert not result.ok and result.error == "HTTP 500 from /system_stats"
    assert (result.cml_version, result.license_state) == ("2.9.0", "evaluation")
    assert result.cml_cpu_percent is None and result.labs == ()


def test_a_failed_labs_read_leaves_the_worker_ok(fake):
    fake.answers["/populate_lab_tiles"] = (500, {})

    result = observe(fake.targets)[1]

    assert result.ok and result.labs is None
    assert result.error == "HTTP 500 from /populate_lab_tiles"
    assert result.cml_cpu_percent == 12.5


def test_missing_keys_give_none_not_errors(fake):
    fake.answers.update(
        {
            "/system_information": (200, {}),
            "/system_health": (200, []),
            "/system_stats": (200, {"computes": {"x": {"stats": {"cpu": "n/a"}}}}),
            "/licensing": (200, {}),
            "/populate_lab_tiles": (200, {"lab_tiles": {"l1": {}}}),
        }
    )

    result = observe(fake.targets)[1]

    assert result.ok and (result.cml_version, result.cml_ready) == ("", None)
    assert result.license_state == "unknown"
    assert (result.cml_cpu_percent, result.cml_memory_total, result.nodes_total) == (
        None,
        None,
        None,
    )
    assert (
        result.compute_hosts[0]["hostname"] == "" and result.compute_hosts[0]["cpu_percent"] is None
    )
    (lab,) = result.labs
    assert (lab.lab_id, lab.title, lab.state, lab.created) == ("l1", "", "UNKNOWN", None)


@pytest.mark.parametrize(
    ("registration", "authorization", "expected"),
    [
        ("COMPLETED", "IN_COMPLIANCE", "licensed"),
        ("COMPLETED", "AUTHORIZED_RESERVED", "licensed"),
        ("NOT_STARTED", "EVAL", "evaluation"),
        ("COMPLETED", "OUT_OF_COMPLIANCE", "out_of_compliance"),
        ("COMPLETED", "Out of compliance", "out_of_compliance"),
        ("NOT_STARTED", "EVAL_EXPIRED", "expired"),
        ("COMPLETED", "AUTHORIZATION_EXPIRED", "expired"),
        ("FAILED", "INIT", "unregistered"),
        ("UNREGISTERED", None, "unregistered"),
        ("COMPLETED", "INIT", "unknown"),
        (None, None, "unknown"),
    ],
)
def test_licence_states(registration, authorization, expected):
    licensing = {
        "registration": {"status": registration},
        "authorization": {"status": authorization},
    }
    assert license_state(licensing) == expected


def test_the_simulators_licence_states_are_mapped(sim):
    worker = sim.add_worker("i-0aaa")
    worker.registration_status, worker.authorization_status = "COMPLETED", "OUT_OF_COMPLIANCE"

    result = observe([target(sim, "i-0aaa")], read_labs=False)[1]

    assert result.license_state == "out_of_compliance"


# --- Hostile answers: size, emptiness, nesting, types -----------------------------------------


def test_a_body_over_the_cap_is_that_calls_error_and_is_read_no_further(fake):
    pulled = []

    def fifty_megabytes():
        for _ in range(50):
            pulled.append(1)
            yield b" " * 1_000_000

    fake.answers["/system_stats"] = (200, fifty_megabytes())  # chunked: no Content-Length

    result = observe(fake.targets, max_response_bytes=3_000_000)[1]

    assert not result.ok and result.error == "CML /system_stats answered more than 3 MB"
    time.sleep(0.5)  # the server writes until the hang-up reaches it
    assert len(pulled) < 50  # the rest was never sent: the client hung up


def test_a_declared_length_over_the_cap_is_refused_before_reading(sim):
    sim.add_worker("i-0aaa").huge_body = True
    sim.add_worker("i-0bbb")

    results = observe([target(sim, "i-0aaa", 1), target(sim, "i-0bbb", 2)])

    assert results[1].error == "CML /system_information answered more than 5 MB"
    assert results[2].ok


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"", "CML /system_stats answered an empty body"),
        (b" \r\n", "CML /system_stats answered an empty body"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid JSON from /system_stats"),
        (b"1" * 5000, "invalid JSON from /system_stats"),  # more digits than Python converts
    ],
)
def test_empty_deep_or_absurd_bodies_are_specific_errors(fake, body, error):
    fake.answers["/system_stats"] = (200, body)

    result = observe(fake.targets)[1]

    assert not result.ok and result.error == error


def test_wrong_json_types_are_dropped_and_noted(fake):
    fake.answers.update(
        {
            "/system_information": (200, {"version": 2.9, "ready": True}),
            "/system_health": (200, ["valid"]),
            "/system_stats": (
                200,
                {
                    "all": {"cpu": {"percent": "12.5"}, "memory": [1, 2]},
                    "computes": {
                        "c1": {"hostname": None, "stats": {"dominfo": {"total_nodes": "3"}}}
                    },
                },
            ),
            "/populate_lab_tiles": (200, {"lab_tiles": {"l1": {"lab_title": 7}, "l2": "lab"}}),
        }
    )

    result = observe(fake.targets)[1]

    assert result.ok and result.cml_version == "" and result.cml_cpu_percent is None
    assert result.nodes_total is None and [lab.title for lab in result.labs] == [""]
    assert set(result.notes) == {  # labs are read alongside the stats: any order
        "CML /system_information version: not a string (float)",
        "CML /system_health: not a JSON object (list)",
        "CML /system_stats all.memory: not a JSON object (list)",
        "CML /system_stats computes[].stats.dominfo.total_nodes: not a number (str)",
        "CML /system_stats all.cpu.percent: not a number (str)",
        "CML labs lab_title: not a string (int)",
        "CML labs: a lab that is not a JSON object (str), skipped",
    }


def test_a_lab_list_with_odd_entries_reads_each_lab_once(fake):
    lab = {"id": "a", "lab_title": "A"}
    fake.answers.update(
        {
            "/populate_lab_tiles": (404, {}),
            "/labs": (200, ["a", "a", 7, None, ""]),
            "/labs/a": (200, lab),
        }
    )

    result = observe(fake.targets)[1]

    assert [lab.lab_id for lab in result.labs] == ["a"] and fake.seen.count("/labs/a") == 1
    assert result.notes == ("CML /labs: an entry that is not a lab id, skipped",)
