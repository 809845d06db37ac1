"""Start, stop and terminate workers: EC2 is asked at once, the page shows "stopping…", and a
django-q2 task follows DescribeInstances until the state settles (or its deadline passes)."""

import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fleet.actions import ec2
from fleet.actions.audit import Outcome, UpstreamError, finish, perform, set_worker
from fleet.collection.collect import collect
from fleet.models import (
    ActionEntry,
    ActionName,
    ActionOutcome,
    PendingAction,
    RunKind,
    RunTrigger,
    Worker,
)
from fleet.models import WorkerStatus as State
from fleet.models.changes import record_change

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # between two DescribeInstances while an action settles
SETTLE_TASK = "fleet.actions.workers.settle"


class Change:
    """One lifecycle action: its EC2 operation, pending label and the state it ends in."""

    def __init__(self, action, operation, pending, goal, done_in, refused_in=()):
        self.action = action
        self.operation = operation
        self.pending = pending
        self.goal = goal
        self.done_in = set(done_in)  # states in which there is nothing to do
        self.refused_in = set(refused_in)  # states in which the action makes no sense


START = Change(
    ActionName.START_WORKER,
    "StartInstances",
    PendingAction.START,
    State.RUNNING,
    done_in=[State.RUNNING],
    refused_in=[State.TERMINATED, State.SHUTTING_DOWN],
)
STOP = Change(
    ActionName.STOP_WORKER,
    "StopInstances",
    PendingAction.STOP,
    State.STOPPED,
    done_in=[State.STOPPED],
    refused_in=[State.TERMINATED, State.SHUTTING_DOWN],
)
TERMINATE = Change(
    ActionName.TERMINATE_WORKER,
    "TerminateInstances",
    PendingAction.TERMINATE,
    State.TERMINATED,
    done_in=[State.TERMINATED],
)
CHANGES = {change.action: change for change in (START, STOP, TERMINATE)}


def start_worker(user, worker: Worker) -> ActionEntry:
    return _lifecycle(user, worker, START)


def stop_worker(user, worker: Worker, *, actor: str = "", reason: str = "") -> ActionEntry:
    """Stop; the idle pass calls it as the system (`actor`) with the reason "idle"."""
    return _lifecycle(user, worker, STOP, actor=actor, reason=reason)


def terminate_worker(user, worker: Worker, confirmation: str) -> ActionEntry:
    """Terminate, once the user has typed the worker's name (or instance id if it has none)."""
    expected = worker.name or worker.instance_id
    if confirmation.strip() != expected:
        return perform(
            user,
            TERMINATE.action,
            worker,
            lambda: Outcome(
                ActionOutcome.FAILED,
                f"Not terminated: type the worker's name ({expected}) to confirm.",
            ),
        )
    return _lifecycle(user, worker, TERMINATE)


def _lifecycle(
    user, worker: Worker, change: Change, *, actor: str = "", reason: str = ""
) -> ActionEntry:
    def call() -> Outcome:
        worker.refresh_from_db()
        if worker.pending_action:
            return Outcome(ActionOutcome.NOOP, f"{worker} is already {worker.pending_label}")
        if worker.status in change.done_in:
            return Outcome(ActionOutcome.NOOP, f"{worker} is already {worker.status}.")
        if worker.status in change.refused_in:
            return Outcome(
                ActionOutcome.FAILED, f"{worker} is {worker.status}: it cannot be changed."
            )
        before, now = ec2.change_state(change.operation, worker.region, worker.instance_id)
        if before == change.goal:  # EC2 was there already (our view of it was stale)
            return Outcome(
                ActionOutcome.NOOP,
                f"{worker} was already {before}.",
                set_worker(worker, status=before),
            )
        return Outcome(
            ActionOutcome.PENDING,
            f"EC2 accepted: {before} → {now}.",
            set_worker(
                worker,
                status=now if now in State.values else State.UNKNOWN,
                pending_action=change.pending,
                pending_since=timezone.now(),
            ),
            task=SETTLE_TASK,
        )

    return perform(user, change.action, worker, call, actor=actor, reason=reason)


def settle(entry_id: int) -> str:
    """The django-q2 task of a pending start, stop or terminate: follow the instance's state
    (writing each step, so the pages show pending → running) until it reaches the action's goal
    or ACTION_DEADLINE_SECONDS pass, then close the entry and collect the worker once."""
    entry = ActionEntry.objects.select_related("worker").get(pk=entry_id)
    worker, change = entry.worker, CHANGES[entry.action]
    if entry.outcome != ActionOutcome.PENDING or worker is None:
        return f"entry {entry_id} is not pending"
    deadline = time.monotonic() + settings.ACTION_DEADLINE_SECONDS
    state, error = worker.status, ""
    while True:
        try:
            state = ec2.instance_state(worker.region, worker.instance_id) or State.TERMINATED
            error = ""
        except UpstreamError as failure:  # a passing outage: keep asking until the deadline
            error = str(failure)
        if state == change.goal or time.monotonic() >= deadline:
            break
        if state != worker.status and state in State.values:
            finish_step(worker, state)
        time.sleep(POLL_SECONDS)
    done = state == change.goal
    if done:
        outcome, message = ActionOutcome.SUCCEEDED, f"{worker} is {state}."
    else:
        waited = settings.ACTION_DEADLINE_SECONDS
        message = f"{worker} is still {state} after {waited} s" + (f": {error}" if error else ".")
        outcome = ActionOutcome.FAILED
    finish(
        entry,
        outcome,
        message,
        set_worker(
            worker,
            status=state if state in State.values else State.UNKNOWN,
            pending_action=PendingAction.NONE,
            pending_since=None,
        ),
    )
    _collect_now(worker)
    return message


def finish_step(worker: Worker, state: str) -> None:
    """Write an intermediate state (pending, stopping) so the pages follow it live."""
    with transaction.atomic():
        Worker.objects.filter(pk=worker.pk).update(status=state)
        record_change(worker.pk, fields=["status"])
    worker.status = state


def _collect_now(worker: Worker) -> None:
    """Read the settled worker once (IPs, CML), so the pages need not wait for the schedule."""
    try:
        collect([worker.pk], kind=RunKind.FULL, trigger=RunTrigger.REFRESH)
    except Exception:  # the action is done; the next cycle will read the worker anyway
        log.exception("collecting %s after its action failed", worker)


def bulk(user, action: str, workers: list[Worker]) -> list[ActionEntry]:
    """Start or stop each worker in turn: one audit entry each, whatever the others did."""
    act = {ActionName.START_WORKER: start_worker, ActionName.STOP_WORKER: stop_worker}[action]
    return [act(user, worker) for worker in workers]
