"""One simulated CML 2.9 server: its state, fault knobs and REST API answers.

Plain Python, no HTTP: `SimulatedCML.respond()` turns a request into a `Reply`; the server in
`cml.py` carries it over the wire and adds the timing faults (latency, hang).
"""

import copy
import json
import random
import secrets
import threading
import uuid
from collections import Counter
from dataclasses import InitVar, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from simulator.cml_payloads import (
    Compute,
    health_payload,
    lab_payload,
    licensing_payload,
    stats_payload,
)
from simulator.cml_telemetry import Telemetry, user_id

LAB_STATES = ("DEFINED_ON_CORE", "STOPPED", "STARTED")
LAB_TITLES = (
    "CCNA study lab", "OSPF multi-area", "BGP route reflectors", "SD-WAN sandbox",
    "MPLS L3VPN", "EVPN VXLAN fabric", "IOSv feature tests", "Firewall failover",
    "Campus access layer", "DMVPN phase 3", "Segment routing", "NetDevOps pipeline",
)  # fmt: skip
OWNERS = (("admin", "CML Administrator"), ("jdoe", "Jane Doe"), ("rsmith", "Raj Smith"))
GROUPS = ("netops", "training", "sales-eng")
KNOB_TYPES: dict[str, tuple[type, ...]] = {
    "latency_ms": (int,),
    "hang": (bool,),
    "http_500": (bool,),
    "malformed_json": (bool,),
    "not_ready": (bool,),
    "token_ttl_requests": (int, type(None)),
    "bad_data": (str, type(None)),
    "huge_body": (bool,),
    "empty_body": (bool,),
    "activity": (str, type(None)),  # simulator.cml_telemetry: "active", "idle" or None
}
ACTIVITY = ("active", "idle")
# The values of the `bad_data` knob: odd but possible data in otherwise well-formed answers.
BAD_DATA = (
    "nul_bytes",  # a NUL character in the first lab's title and in the compute host names
    "long_strings",  # a 100-character version and a 1,000-character lab title
    "negative_numbers",  # running nodes -5 on every compute, the first lab's node count -3
    "huge_numbers",  # 10**12 total nodes, 10**30 bytes of memory, the first lab's link count
    "non_finite",  # NaN CPU percent and Infinity memory (Python's json writes them)
    "wrong_types",  # a string CPU percent, a number lab title, a list for /system_health
    "long_lab_id",  # one more lab, with a 100-character id
    "duplicate_lab_ids",  # one more lab entry carrying the first lab's id
)
HUGE_BODY_BYTES = 50_000_000  # `huge_body`: every JSON answer padded with this much whitespace
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, body bytes and content type."""

    status: int
    body: bytes
    content_type: str = "application/json"


def json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, json.dumps(payload).encode())


def error_reply(status: int, description: str) -> Reply:
    """CML's error body: `{"code": ..., "description": ...}`."""
    return json_reply(status, {"code": status, "description": description})


@dataclass
class SimulatedCML:
    """One worker's CML state and fault knobs; every attribute may be set from tests at any time."""

    instance_id: str
    version: str = "2.9.1"
    latency_ms: int = 0
    hang: bool = False
    http_500: bool = False
    malformed_json: bool = False
    not_ready: bool = False
    token_ttl_requests: int | None = None
    bad_data: str | None = None
    huge_body: bool = False
    empty_body: bool = False
    activity: str | None = None
    licensed: bool = True
    is_enterprise: bool = True
    registration_status: str = "COMPLETED"
    authorization_status: str = "IN_COMPLIANCE"
    registration_steps: int = 1  # reads of /licensing a registration stays IN_PROGRESS for
    registration_left: int = 0
    registration_will_fail: bool = False
    registration_failure: str | None = None
    licensed_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    username: str = "admin"
    password: str = "simulated-password"
    cpu_count: int = 32
    memory_total: int = 128 * 1024**3
    disk_total: int = 1024**4
    labs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    authentications: int = 0
    seed: int = 0
    lab_count: InitVar[int | None] = None
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    computes: list[Compute] = field(init=False, repr=False)
    telemetry: Telemetry = field(init=False, repr=False)
    _tokens: dict[str, int] = field(init=False, repr=False, default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self, lab_count: int | None) -> None:
        self._rng = random.Random(f"{self.seed}:{self.instance_id}")
        count = 2 if self._rng.random() < 0.15 else 1
        self.computes = [Compute.generate(self._rng, is_controller=i == 0) for i in range(count)]
        self.telemetry = Telemetry(  # its own random stream: the labs' stays as it was
            random.Random(f"{self.seed}:{self.instance_id}:telemetry"), own_username=self.username
        )
        for _ in range(self._rng.randint(1, 6) if lab_count is None else lab_count):
            self._add_lab()

    # --- knobs -------------------------------------------------------------------------------

    def knobs(self) -> dict[str, Any]:
        """The fault knobs the control API can read and set."""
        return {name: getattr(self, name) for name in KNOB_TYPES}

    def set_knobs(self, values: dict[str, Any]) -> None:
        """Set several knobs at once; ValueError (nothing set) on an unknown knob or bad type."""
        for name, value in values.items():
            allowed = KNOB_TYPES.get(name)
            if allowed is None:
                raise ValueError(f"unknown knob {name!r}")
            if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
                raise ValueError(f"bad value for {name}: {value!r}")
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{name} must not be negative")
            if name == "bad_data" and value is not None and value not in BAD_DATA:
                raise ValueError(f"bad_data must be one of {', '.join(BAD_DATA)}")
            if name == "activity" and value is not None and value not in ACTIVITY:
                raise ValueError(f"activity must be one of {', '.join(ACTIVITY)} or null")
        for name, value in values.items():
            setattr(self, name, value)

    def record_request(self, path: str) -> None:
        """Count a request to `path` as it arrives, before any latency or hang."""
        with self.lock:
            self.requests[path] += 1

    def reset_faults(self) -> None:
        """Every fault knob, and the licence, back to its default (between tests)."""
        resettable = {
            *KNOB_TYPES,
            "licensed",
            "registration_status",
            "authorization_status",
            "registration_steps",
            "registration_left",
            "registration_will_fail",
            "registration_failure",
        }
        for spec in fields(self):
            if spec.name in resettable:
                setattr(self, spec.name, spec.default)

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far; the next authenticated call gets 401."""
        with self.lock:
            self._tokens.clear()

    # --- API -----------------------------------------------------------------------------------

    def respond(
        self,
        method: str,
        path: str,
        body: bytes,
        authorization: str | None,
        query: dict[str, str] | None = None,
    ) -> Reply:
        """Answer one request to `/api/v0{path}` (path without the query string)."""
        if self.not_ready:
            return Reply(502, NGINX_502, "text/html")
        if self.http_500:
            return error_reply(500, "Internal Server Error: simulated fault")
        reply = self._route(method, path, body, authorization, query or {})
        if reply.status != 200:
            return reply
        if self.empty_body:
            return Reply(200, b"")
        if self.huge_body:  # still valid JSON: whitespace may follow the value
            return Reply(200, reply.body + b" " * HUGE_BODY_BYTES)
        if self.malformed_json:
            return Reply(200, reply.body[: len(reply.body) // 2])
        return reply

    def _route(
        self, method: str, path: str, body: bytes, authorization: str | None, query: dict
    ) -> Reply:
        from simulator.cml_actions import act  # imported here: it builds on this module

        if path == "/authenticate":
            return self._authenticate(body) if method == "POST" else _not_allowed()
        if path == "/system_information":
            return (
                json_reply(200, self._system_information()) if method == "GET" else _not_allowed()
            )
        if method != "GET" or path.endswith("/download"):
            if not self._accept_token(authorization):
                return error_reply(
                    401, "Authentication required: missing, invalid or expired token"
                )
            with self.lock:
                reply = act(self, method, path, body, query)
            if reply is not None:
                return reply
        render = self._renderer(path)
        if render is None:
            return error_reply(404, f"Not found: {path}")
        if method != "GET":
            return _not_allowed()
        if not self._accept_token(authorization):
            return error_reply(401, "Authentication required: missing, invalid or expired token")
        with self.lock:
            payload = render()
        if payload is None:
            return error_reply(404, f"Not found: {path}")
        return json_reply(200, payload)

    def _renderer(self, path: str) -> Any:
        """The function building the payload of an authenticated path (None: no such lab)."""
        routes = {
            "/system_health": self._health,
            "/system_stats": self._stats,
            "/licensing": self._licensing,
            "/labs": lambda: list(self._lab_view()),
            "/populate_lab_tiles": lambda: {"lab_tiles": self._lab_view()},
            "/telemetry/events": self._events,
        }
        if path.startswith("/users/") and path.endswith("/id") and path.count("/") == 3:
            username = path.split("/")[2]
            return lambda: user_id(username) if username == self.username else None
        if path.startswith("/labs/") and path.count("/") == 2:
            lab_id = path.removeprefix("/labs/")
            return lambda: self._lab_view().get(lab_id)
        return routes.get(path)

    def _authenticate(self, body: bytes) -> Reply:
        try:
            credentials = json.loads(body)
            username, password = credentials["username"], credentials["password"]
        except (ValueError, TypeError, KeyError):
            return error_reply(400, "Bad request: expected {'username': ..., 'password': ...}")
        if (username, password) != (self.username, self.password):
            return error_reply(403, "Authentication failed!")
        token = secrets.token_urlsafe(32)
        with self.lock:
            self._tokens[token] = 0
            self.authentications += 1
            self.telemetry.signed_in()
        return json_reply(200, token)

    def _accept_token(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        with self.lock:
            uses = self._tokens.get(token)
            if scheme.lower() != "bearer" or uses is None:
                return False
            if self.token_ttl_requests is not None and uses >= self.token_ttl_requests:
                return False
            self._tokens[token] = uses + 1
            return True

    def _system_information(self) -> dict[str, Any]:
        version = self.version + "-" + "x" * 94 if self.bad_data == "long_strings" else self.version
        return {"version": version, "ready": True, "allow_ssh_pubkey_auth": False, "oui": None}

    def _events(self) -> list[dict[str, Any]]:
        if self.activity == "active":
            self.telemetry.someone_works()
        return list(self.telemetry.events)

    def _health(self) -> Any:
        if self.bad_data == "wrong_types":
            return []
        return health_payload(self.computes, self.licensed, self.is_enterprise)

    def _stats(self) -> dict[str, Any]:
        started = [lab for lab in self.labs.values() if lab["state"] == "STARTED"]
        deployed = [lab for lab in self.labs.values() if lab["state"] != "DEFINED_ON_CORE"]
        stats = stats_payload(
            self.computes,
            cpu_count=self.cpu_count,
            memory_total=self.memory_total,
            disk_total=self.disk_total,
            total_nodes=sum(lab["node_count"] for lab in deployed),
            running_nodes=sum(lab["node_count"] for lab in started),
        )
        overall = stats["all"]
        for compute in stats["computes"].values():
            dominfo = compute["stats"]["dominfo"]
            if self.bad_data == "nul_bytes":
                compute["hostname"] += "\x00"
            elif self.bad_data == "negative_numbers":
                dominfo["running_nodes"] = -5
            elif self.bad_data == "huge_numbers":
                dominfo["total_nodes"] = 10**12
        if self.bad_data == "huge_numbers":
            overall["memory"]["total"] = 10**30
        elif self.bad_data == "non_finite":
            overall["cpu"]["percent"] = float("nan")
            overall["memory"]["total"] = float("inf")
        elif self.bad_data == "wrong_types":
            overall["cpu"]["percent"] = str(overall["cpu"]["percent"])
        return stats

    def _lab_view(self) -> dict[str, dict[str, Any]]:
        """The labs as answered: the stored labs, with the `bad_data` fault applied to a copy."""
        if self.bad_data is None or not self.labs:
            return self.labs
        labs = copy.deepcopy(self.labs)
        first = next(iter(labs.values()))
        if self.bad_data == "nul_bytes":
            first["lab_title"] += "\x00"
        elif self.bad_data == "long_strings":
            first["lab_title"] = "L" * 1000
        elif self.bad_data == "negative_numbers":
            first["node_count"] = -3
        elif self.bad_data == "huge_numbers":
            first["link_count"] = 10**12
        elif self.bad_data == "wrong_types":
            first["lab_title"] = 42
        elif self.bad_data == "long_lab_id":
            labs["x" * 100] = {**first, "id": "x" * 100}
        elif self.bad_data == "duplicate_lab_ids":
            labs[first["id"] + "-again"] = dict(first)  # a second entry, the same "id"
        return labs

    def _licensing(self) -> dict[str, Any]:
        from simulator.cml_actions import licensing_step  # (see _route)

        licensing_step(self)
        payload = licensing_payload(
            self.computes[0].hostname,
            registration_status=self.registration_status,
            authorization_status=self.authorization_status,
            is_enterprise=self.is_enterprise,
            nodes_in_use=sum(
                lab["node_count"] for lab in self.labs.values() if lab["state"] == "STARTED"
            ),
            now=self.licensed_at,
        )
        if self.registration_failure:
            payload["registration"]["register_time"]["status"] = "FAILED"
            payload["registration"]["register_time"]["failure"] = self.registration_failure
        return payload

    # --- drift ---------------------------------------------------------------------------------

    def advance(self) -> None:
        """One step of drift: resource use wanders; labs appear, change state and disappear."""
        with self.lock:
            for compute in self.computes:
                compute.drift(self._rng)
            now = datetime.now(UTC)
            for lab in list(self.labs.values()):
                if self._rng.random() < 0.15:
                    lab["state"] = self._rng.choice([s for s in LAB_STATES if s != lab["state"]])
                    lab["modified"] = _iso(now)
            if self.labs and self._rng.random() < 0.08:
                del self.labs[self._rng.choice(list(self.labs))]
            if self._rng.random() < 0.12:
                self._add_lab(created=now)
            self.telemetry.drift(self.activity)

    def _add_lab(self, created: datetime | None = None) -> None:
        rng = self._rng
        lab_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if created is None:
            created = datetime.now(UTC) - timedelta(minutes=rng.randint(60, 90 * 24 * 60))
        modified = created + timedelta(minutes=rng.randint(0, 600))
        username, fullname = rng.choice(OWNERS)
        nodes = rng.randint(1, 30)
        groups = [
            {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "name": rng.choice(GROUPS),
                "permission": rng.choice(("read_only", "read_write")),
            }
            for _ in range(rng.randint(0, 2))
        ]
        self.labs[lab_id] = lab_payload(
            lab_id=lab_id,
            title=f"{rng.choice(LAB_TITLES)} {rng.randint(1, 99)}",
            state=rng.choice(LAB_STATES),
            owner=str(uuid.uuid5(uuid.NAMESPACE_DNS, username)),
            owner_username=username,
            owner_fullname=fullname,
            node_count=nodes,
            link_count=rng.randint(max(0, nodes - 1), nodes * 2),
            created=_iso(created),
            modified=_iso(min(modified, datetime.now(UTC))),
            groups=groups,
        )


def _not_allowed() -> Reply:
    return error_reply(405, "Method Not Allowed")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")
