"""The common audited path of every action: permission, then the upstream call, then one
transaction holding the state it changes, the audit entry and the change-log row."""

import getpass
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from fleet.models import ActionEntry, ActionName, ActionOutcome, Worker
from fleet.models.changes import record_change

log = logging.getLogger("fleet.actions")


class UpstreamError(Exception):
    """AWS or CML refused the action or could not be reached; the message is for people."""


@dataclass(frozen=True)
class Outcome:
    """What an action's upstream call came to, and what to write with its audit entry.

    `apply` writes the state the action changed (inside the audit transaction) and returns the
    names of the worker fields it changed; `task` is the django-q2 function that settles a
    pending action, queued with the entry's id once the transaction commits."""

    outcome: str
    message: str
    apply: Callable[[], Iterable[str]] | None = None
    task: str = ""


def system_actor() -> str:
    """How the audit names a `manage.py` command: the system, run by this OS account (there is
    no signed-in user; whoever can run the command owns the settings and the database)."""
    try:
        return f"system ({getpass.getuser()})"
    except (OSError, KeyError):  # no login name in the environment or the password database
        return "system"


def require(user, action: str) -> None:
    """Refuse a user without the action's permission (None is the system: commands, tasks)."""
    if user is not None and not user.has_perm(f"fleet.{action}"):
        label = ActionName(action).label
        raise PermissionDenied(f"You may not {label}.")


def perform(
    user,
    action: str,
    worker: Worker | None,
    call: Callable[[], Outcome],
    *,
    target: str = "",
    lab_id: str = "",
    actor: str = "",
    reason: str = "",
) -> ActionEntry:
    """Run one action: check the permission, make the upstream call, then write its state, the
    audit entry and the change log together. An upstream refusal writes only a failed entry.
    `reason` says why the system acted on its own (auto-pause: "idle")."""
    require(user, action)
    try:
        result = call()
    except UpstreamError as error:
        result = Outcome(ActionOutcome.FAILED, str(error))
    return record(
        user, action, worker, result, target=target, lab_id=lab_id, actor=actor, reason=reason
    )


def record(
    user,
    action: str,
    worker: Worker | None,
    result: Outcome,
    *,
    target: str = "",
    lab_id: str = "",
    actor: str = "",
    reason: str = "",
) -> ActionEntry:
    """Write the outcome's state, its audit entry and the change log in one transaction.
    `actor` names who acted when there is no user (a command: `system_actor()`)."""
    now = timezone.now()
    with transaction.atomic():
        fields = list(result.apply()) if result.apply else []
        entry = ActionEntry.objects.create(
            user=user,
            username=user.get_username() if user is not None else (actor or "system"),
            action=action,
            worker=worker,
            target=(target or (str(worker) if worker else ""))[:255],
            lab_id=lab_id,
            reason=reason,
            outcome=result.outcome,
            message=result.message,
            started_at=now,
            finished_at=None if result.outcome == ActionOutcome.PENDING else now,
        )
        if worker is not None:
            record_change(worker.pk, fields=[*fields, "actions"])
        if result.task:
            transaction.on_commit(
                lambda: async_task(result.task, entry.pk, task_name=f"{action} {entry.pk}")
            )
    log.info("%s: %s %s: %s %s", entry.username, action, entry.target, entry.outcome, entry.message)
    return entry


def finish(entry: ActionEntry, outcome: str, message: str, apply=None) -> ActionEntry:
    """Close a pending entry (from its task) with the state it settled in, in one transaction."""
    with transaction.atomic():
        fields = list(apply()) if apply else []
        entry.outcome = outcome
        entry.message = message
        entry.finished_at = timezone.now()
        entry.save(update_fields=["outcome", "message", "finished_at"])
        if entry.worker_id is not None:
            record_change(entry.worker_id, fields=[*fields, "actions"])
    log.info("%s %s %s: %s %s", entry.username, entry.action, entry.target, outcome, message)
    return entry


def set_worker(worker: Worker, **values) -> Callable[[], list[str]]:
    """An `apply` that saves these fields of the worker and names them for the change log."""

    def apply() -> list[str]:
        for name, value in values.items():
            setattr(worker, name, value)
        worker.save(update_fields=list(values))
        return list(values)

    return apply
