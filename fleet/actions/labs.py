"""Lab actions on a worker's CML (CML 2.9's endpoints, as Cisco's virl2-client calls them):
`PUT labs/{id}/start|stop|wipe`, `DELETE labs/{id}`, `GET labs/{id}/download`, `POST import`.
CML's refusals (a lab must be stopped before it is wiped) reach the page in CML's words."""

from django.db.models import Model

from fleet.actions.audit import Outcome, UpstreamError, perform
from fleet.actions.cml_api import CMLApi
from fleet.collection.derive import derive_lab_changes
from fleet.collection.fit import Notes, fit_labs
from fleet.collection.sources.cml import LabObservation
from fleet.collection.sources.cml_parse import parse_lab
from fleet.models import ActionEntry, ActionName, ActionOutcome, Lab, LabState, Worker

# verb → (action, CML method, the states in which there is nothing to do, the state expected)
VERBS = {
    "start": (ActionName.START_LAB, "PUT", {LabState.STARTED}, LabState.STARTED),
    "stop": (
        ActionName.STOP_LAB,
        "PUT",
        {LabState.STOPPED, LabState.DEFINED_ON_CORE},
        LabState.STOPPED,
    ),
    "wipe": (ActionName.WIPE_LAB, "PUT", {LabState.DEFINED_ON_CORE}, LabState.DEFINED_ON_CORE),
    "delete": (ActionName.DELETE_LAB, "DELETE", set(), None),
}


def lab_action(user, worker: Worker, lab: Lab, verb: str) -> ActionEntry:
    """Start, stop, wipe or delete one lab. A lab already in the asked state is left alone."""
    action, method, done_in, expected = VERBS[verb]

    def call() -> Outcome:
        if lab.state in done_in:
            return Outcome(ActionOutcome.NOOP, f"{lab} is already {lab.get_state_display()}.")
        with CMLApi(worker) as cml:
            if verb == "delete":
                cml.call("DELETE", f"/labs/{lab.lab_id}")
                return Outcome(ActionOutcome.SUCCEEDED, f"Deleted {lab}.", _delete(worker, lab))
            cml.call(method, f"/labs/{lab.lab_id}/{verb}")
            state = _state_now(cml, lab, expected)
        message = f"{lab}: {verb} done, now {LabState(state).label}."
        return Outcome(ActionOutcome.SUCCEEDED, message, _set_state(worker, lab, state))

    return perform(user, action, worker, call, target=f"{lab} on {worker}", lab_id=lab.lab_id)


def download_lab(user, worker: Worker, lab: Lab) -> tuple[ActionEntry, str]:
    """The lab's topology as CML exports it (YAML); ("" on failure, the entry says why)."""
    topology = ""

    def call() -> Outcome:
        nonlocal topology
        with CMLApi(worker) as cml:
            topology = cml.call("GET", f"/labs/{lab.lab_id}/download").text
        return Outcome(ActionOutcome.SUCCEEDED, f"Downloaded {lab} ({len(topology)} bytes).")

    entry = perform(
        user, ActionName.DOWNLOAD_LAB, worker, call, target=f"{lab} on {worker}", lab_id=lab.lab_id
    )
    return entry, topology


def import_lab(user, worker: Worker, topology: bytes, title: str = "") -> ActionEntry:
    """Create a lab on the worker from a topology file (CML's YAML), and list it at once."""

    def call() -> Outcome:
        with CMLApi(worker) as cml:
            created = cml.json(
                "POST", "/import", content=topology, params={"title": title} if title else None
            )
            lab_id = str(created.get("id") or "") if isinstance(created, dict) else ""
            if not lab_id:
                raise UpstreamError("CML imported the lab but did not say its id")
            data = cml.json("GET", f"/labs/{lab_id}")
        parsed = LabObservation(**parse_lab(lab_id, data if isinstance(data, dict) else {}, []))
        fitted = fit_labs((parsed,), Notes())  # CML's answer is bad input too
        if not fitted:
            raise UpstreamError(f"CML answered a lab id that cannot be stored: {lab_id[:80]!r}")
        seen = fitted[0]
        return Outcome(
            ActionOutcome.SUCCEEDED, f"Imported {seen.title or lab_id}.", _add(worker, seen)
        )

    return perform(
        user, ActionName.IMPORT_LAB, worker, call, target=f"{title or 'a lab'} on {worker}"
    )


def _state_now(cml: CMLApi, lab: Lab, expected: str) -> str:
    """The lab's state as CML reports it right after the action (QUEUED while it boots)."""
    try:
        state = cml.json("GET", f"/labs/{lab.lab_id}").get("state")
    except (UpstreamError, AttributeError):
        return expected
    return state if state in LabState.values else LabState.UNKNOWN


def _set_state(worker: Worker, lab: Lab, state: str):
    def apply() -> list[str]:
        Lab.objects.filter(pk=lab.pk).update(state=state)
        lab.state = state
        return ["labs"]

    return apply


def _delete(worker: Worker, lab: Lab):
    def apply() -> list[str]:
        Lab.objects.filter(pk=lab.pk).delete()
        return _recount(worker)

    return apply


def _add(worker: Worker, seen: LabObservation):
    def apply() -> list[str]:
        upserts, _ = derive_lab_changes(worker, [], (seen,))
        Lab.objects.bulk_create(
            upserts,
            update_conflicts=True,
            unique_fields=["worker", "lab_id"],
            update_fields=["title", "description", "state", "owner", "node_count", "link_count"],
        )
        return _recount(worker)

    return apply


def _recount(worker: Model) -> list[str]:
    count = Lab.objects.filter(worker_id=worker.pk).count()
    Worker.objects.filter(pk=worker.pk).update(labs_count=count)
    return ["labs", "labs_count"]
