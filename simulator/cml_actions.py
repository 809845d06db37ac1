"""What a simulated CML 2.9 server does when it is acted on: lab start, stop, wipe, delete,
download and import, and Smart Licensing registration, with CML's state rules.

- A lab must be stopped before it is wiped, and stopped and wiped (DEFINED_ON_CORE) before it is
  deleted; otherwise 400 with CML's description.
- Registration: a token shorter than 10 characters is refused at once (400); otherwise the
  registration goes IN_PROGRESS and, after `registration_steps` reads of /licensing, COMPLETED
  (IN_COMPLIANCE), or FAILED when the token starts with "bad" (a token Cisco rejects).
"""

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from simulator.cml_payloads import lab_payload
from simulator.cml_worker import Reply, error_reply, json_reply

RUNNING_STATES = {"STARTED", "QUEUED", "BOOTED"}
LAB_VERB = re.compile(r"/labs/(?P<lab_id>[^/]+)/(?P<verb>start|stop|wipe|download)")
LAB = re.compile(r"/labs/(?P<lab_id>[^/]+)")
NO_CONTENT = Reply(204, b"")


LAB_EVENTS = {
    "start": "start_lab",
    "stop": "stop_lab",
    "wipe": "wipe_lab",
    "download": "export_lab",
}


def act(cml: Any, method: str, path: str, body: bytes, query: dict[str, str]) -> Reply | None:
    """Answer an action request, or None when `path` is not an action (the caller routes it).
    Lab operations that succeed are recorded in the telemetry, as the account's activity."""
    reply = _act(cml, method, path, body, query)
    match = LAB_VERB.fullmatch(path)
    category = LAB_EVENTS.get(match["verb"]) if match else None
    if path == "/import":
        category = "import_lab"
    if reply is not None and reply.status in (200, 204) and category:
        cml.telemetry.record(category, cml.username)
    return reply


def _act(cml: Any, method: str, path: str, body: bytes, query: dict[str, str]) -> Reply | None:
    match = LAB_VERB.fullmatch(path)
    if match:
        lab = cml.labs.get(match["lab_id"])
        if lab is None:
            return error_reply(404, f"Lab not found: {match['lab_id']}")
        verb = match["verb"]
        if verb == "download":
            return _download(lab) if method == "GET" else _not_allowed()
        return _lab_verb(lab, verb) if method == "PUT" else _not_allowed()
    match = LAB.fullmatch(path)
    if match and method == "DELETE":
        return _delete(cml, match["lab_id"])
    if path == "/import":
        return _import(cml, body, query.get("title", "")) if method == "POST" else _not_allowed()
    if path == "/licensing/registration":
        return _register(cml, body) if method == "POST" else _not_allowed()
    if path == "/licensing/deregistration":
        return _deregister(cml) if method == "DELETE" else _not_allowed()
    return None


def _lab_verb(lab: dict, verb: str) -> Reply:
    state = lab["state"]
    if verb == "start":
        lab["state"] = "STARTED"
    elif verb == "stop":
        if state in RUNNING_STATES:
            lab["state"] = "STOPPED"
    elif state in RUNNING_STATES:
        return error_reply(400, f"Lab {lab['id']} is not stopped: stop it before wiping it.")
    else:
        lab["state"] = "DEFINED_ON_CORE"
    lab["modified"] = _now()
    return NO_CONTENT


def _delete(cml: Any, lab_id: str) -> Reply:
    lab = cml.labs.get(lab_id)
    if lab is None:
        return error_reply(404, f"Lab not found: {lab_id}")
    if lab["state"] != "DEFINED_ON_CORE":
        return error_reply(400, f"Lab {lab_id} must be stopped and wiped before it is removed.")
    del cml.labs[lab_id]
    return NO_CONTENT


def _download(lab: dict) -> Reply:
    topology = (
        "annotations: []\n"
        "lab:\n"
        f"  title: {json.dumps(lab['lab_title'])}\n"
        f"  description: {json.dumps(lab['lab_description'])}\n"
        "  notes: ''\n"
        "  version: 0.3.0\n"
        "links: []\n"
        "nodes: []\n"
    )
    return Reply(200, topology.encode(), "application/x-yaml")


def _import(cml: Any, body: bytes, title: str) -> Reply:
    text = body.decode("utf-8", errors="replace")
    if not re.search(r"^lab:", text, re.MULTILINE):
        return error_reply(400, "Invalid topology: no 'lab' section.")
    found = re.search(r"^\s+title:\s*(.+)$", text, re.MULTILINE)
    title = title or (found[1].strip().strip("'\"") if found else "Imported lab")
    lab_id = str(uuid.uuid4())
    now = _now()
    cml.labs[lab_id] = lab_payload(
        lab_id=lab_id,
        title=title,
        state="DEFINED_ON_CORE",
        owner=str(uuid.uuid5(uuid.NAMESPACE_DNS, cml.username)),
        owner_username=cml.username,
        owner_fullname="CML Administrator",
        node_count=len(re.findall(r"^\s*- id: n\d+", text, re.MULTILINE)),
        link_count=len(re.findall(r"^\s*- id: l\d+", text, re.MULTILINE)),
        created=now,
        modified=now,
        groups=[],
    )
    return json_reply(200, {"id": lab_id, "warnings": []})


def _register(cml: Any, body: bytes) -> Reply:
    try:
        request = json.loads(body)
        token, reregister = str(request["token"]), bool(request.get("reregister", False))
    except (ValueError, TypeError, KeyError):
        return error_reply(400, "Bad request: expected {'token': ..., 'reregister': ...}")
    if len(token.strip()) < 10:
        return error_reply(400, "Invalid registration token.")
    if cml.registration_status == "COMPLETED" and not reregister:
        return error_reply(400, "The product is already registered: re-register instead.")
    cml.registration_status = "IN_PROGRESS"
    cml.registration_failure = None
    cml.registration_left = cml.registration_steps
    cml.registration_will_fail = token.startswith("bad")
    return NO_CONTENT


def _deregister(cml: Any) -> Reply:
    if cml.registration_status != "COMPLETED":
        return error_reply(400, "The product is not registered.")
    cml.registration_status = "NOT_REGISTERED"
    cml.authorization_status = "EVAL"
    cml.licensed = False
    return NO_CONTENT


def licensing_step(cml: Any) -> None:
    """A read of /licensing moves a registration in progress one step towards its end."""
    if cml.registration_status != "IN_PROGRESS":
        return
    if cml.registration_left > 0:
        cml.registration_left -= 1
        return
    if cml.registration_will_fail:
        cml.registration_status = "FAILED"
        cml.registration_failure = "The token is invalid or expired (Cisco Smart Licensing)."
    else:
        cml.registration_status = "COMPLETED"
        cml.authorization_status = "IN_COMPLIANCE"
        cml.licensed = True
        cml.licensed_at = datetime.now(UTC).replace(microsecond=0)


def _not_allowed() -> Reply:
    return error_reply(405, "Method Not Allowed")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
