"""Licence registration on a worker's CML (Smart Licensing, as virl2-client calls it):
`POST licensing/registration {token, reregister}` then polling `GET licensing` until the
registration is COMPLETED or FAILED, and `DELETE licensing/deregistration`.
The token goes to CML and nowhere else: never into the database, the task queue or a log."""

import time

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from fleet.actions.audit import Outcome, UpstreamError, finish, perform, set_worker
from fleet.actions.cml_api import CMLApi
from fleet.collection.fit import Notes, fit_licence
from fleet.collection.sources.cml_parse import licence_summary, license_state
from fleet.models import ActionEntry, ActionName, ActionOutcome, PendingAction, Worker

POLL_SECONDS = 2.0
SETTLE_TASK = "fleet.actions.licence.settle"
MAX_TOKEN_LENGTH = 1000


@sensitive_variables()  # an error report shows no variable of this call or beneath it
def register_licence(user, worker: Worker, token: str, reregister: bool = False) -> ActionEntry:
    """Ask CML to register with a Smart Licensing token; a task follows it to the end."""
    token = token.strip()

    def call() -> Outcome:
        worker.refresh_from_db()
        if worker.pending_action == PendingAction.REGISTER:
            return Outcome(ActionOutcome.NOOP, "A registration is already in progress.")
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return Outcome(ActionOutcome.FAILED, "Enter the Smart Licensing token.")
        if not reregister and worker.licence.get("registration") == "COMPLETED":
            return Outcome(
                ActionOutcome.NOOP, "Already registered: tick re-register to register again."
            )
        with CMLApi(worker) as cml:
            cml.call(
                "POST", "/licensing/registration", json={"token": token, "reregister": reregister}
            )
        return Outcome(
            ActionOutcome.PENDING,
            "CML accepted the token; registering.",
            set_worker(worker, pending_action=PendingAction.REGISTER, pending_since=timezone.now()),
            task=SETTLE_TASK,
        )

    return perform(user, ActionName.REGISTER_LICENCE, worker, call)


def deregister_licence(user, worker: Worker) -> ActionEntry:
    """Deregister the worker from Smart Licensing (nothing to do when it is not registered)."""

    def call() -> Outcome:
        worker.refresh_from_db()
        if worker.licence and worker.licence.get("registration") != "COMPLETED":
            return Outcome(ActionOutcome.NOOP, f"{worker} is not registered.")
        with CMLApi(worker) as cml:
            response = cml.call("DELETE", "/licensing/deregistration")
            licensing = cml.json("GET", "/licensing")
        message = "Deregistered."
        if response.status_code == 202:
            message = "Deregistered here, but Cisco could not be told (communication timeout)."
        return Outcome(ActionOutcome.SUCCEEDED, message, _licence_fields(worker, licensing))

    return perform(user, ActionName.DEREGISTER_LICENCE, worker, call)


def settle(entry_id: int) -> str:
    """The django-q2 task of a registration: poll /licensing until it completes or fails, or
    ACTION_DEADLINE_SECONDS pass (CML down meanwhile counts as not yet)."""
    entry = ActionEntry.objects.select_related("worker").get(pk=entry_id)
    worker = entry.worker
    if entry.outcome != ActionOutcome.PENDING or worker is None:
        return f"entry {entry_id} is not pending"
    deadline = time.monotonic() + settings.ACTION_DEADLINE_SECONDS
    licensing, error = None, ""
    while True:
        try:
            with CMLApi(worker) as cml:
                licensing = cml.json("GET", "/licensing")
            error = ""
        except UpstreamError as failure:
            error = str(failure)
        status = licence_summary(licensing or {}, [])["registration"]
        if status in ("COMPLETED", "FAILED") or time.monotonic() >= deadline:
            break
        time.sleep(POLL_SECONDS)
    if status == "COMPLETED":
        outcome, message = ActionOutcome.SUCCEEDED, "Registered."
    elif status == "FAILED":
        outcome, message = ActionOutcome.FAILED, f"Registration failed: {_failure(licensing)}"
    else:
        outcome = ActionOutcome.FAILED
        message = f"Not registered after {settings.ACTION_DEADLINE_SECONDS} s" + (
            f": {error}" if error else f" (still {status or 'unknown'})."
        )
    apply = _licence_fields(worker, licensing, clear_pending=True)
    finish(entry, outcome, message, apply)
    return message


def _licence_fields(worker: Worker, licensing: dict | None, clear_pending: bool = False):
    values = {}
    if isinstance(licensing, dict):
        summary = fit_licence(licence_summary(licensing, []), Notes())  # CML's answer is input
        values = {"licence": summary, "license_state": license_state(licensing)}
    if clear_pending:
        values.update(pending_action=PendingAction.NONE, pending_since=None)
    return set_worker(worker, **values) if values else None


def _failure(licensing: dict | None) -> str:
    registration = (licensing or {}).get("registration") or {}
    failure = (registration.get("register_time") or {}).get("failure")
    return str(failure or "CML gave no reason")
