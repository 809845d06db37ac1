"""Refresh: read workers now, from the Refresh buttons and `manage.py refresh_workers`, audited
like every other action (permission `fleet.refresh_worker`).

The collection writes its own run and change-log rows, in transactions of its own, so the
pages follow it while it runs; the audit entry (and its change-log row) is written as soon as
it ends. Refresh all only queues a cycle for the cluster (at most one at a time): its entry
says whether this click queued one.
"""

from django.conf import settings

from fleet.actions.audit import Outcome, perform
from fleet.collection.collect import collect
from fleet.models import (
    ActionEntry,
    ActionName,
    ActionOutcome,
    CollectionRun,
    RunKind,
    RunStatus,
    RunTrigger,
    Worker,
)
from fleet.tasks import queue_refresh_all

REFRESH_DEADLINE_SECONDS = 20  # one worker's collection, while the button waits for it
QUEUED = "A collection of every worker is queued; the pages update as it runs."
ALREADY_QUEUED = "A collection of every worker is already queued or running; one at a time."


def refresh_worker(user, worker: Worker) -> ActionEntry:
    """Collect one worker now (labs included), unless it was read less than
    REFRESH_MIN_INTERVAL_SECONDS ago: then say when, and read nothing."""

    def call() -> Outcome:
        if worker.polled_within(settings.REFRESH_MIN_INTERVAL_SECONDS):
            ago = worker.seconds_since_poll()
            return Outcome(ActionOutcome.NOOP, f"{worker} was refreshed {ago} s ago; showing that.")
        run = collect(
            [worker.pk],
            kind=RunKind.FULL,
            trigger=RunTrigger.REFRESH,
            worker_deadline=REFRESH_DEADLINE_SECONDS,
        )
        error = run.errors.get(str(worker.pk)) or run.message
        if error:
            return Outcome(ActionOutcome.FAILED, f"Refreshed {worker}. Error: {error}")
        return Outcome(ActionOutcome.SUCCEEDED, f"Refreshed {worker}.")

    return perform(user, ActionName.REFRESH_WORKER, worker, call)


def refresh_all(user) -> ActionEntry:
    """Queue a full cycle for the cluster, unless one is already queued or running."""

    def call() -> Outcome:
        if queue_refresh_all():
            return Outcome(ActionOutcome.SUCCEEDED, QUEUED)
        return Outcome(ActionOutcome.NOOP, ALREADY_QUEUED)

    return perform(user, ActionName.REFRESH_WORKER, None, call, target="all workers")


def refresh_now(
    user, pks: list[int] | None, *, labs: bool = True, actor: str = ""
) -> tuple[ActionEntry, CollectionRun]:
    """Collect the given workers (or all) here and now, as `manage.py refresh_workers` does:
    the run and its audit entry, which succeeds only if the run did and no worker failed."""
    run: CollectionRun | None = None

    def call() -> Outcome:
        nonlocal run
        run = collect(
            pks or None,
            kind=RunKind.FULL if labs else RunKind.METRICS,
            trigger=RunTrigger.COMMAND,
        )
        ok = run.status == RunStatus.SUCCEEDED and not run.errors
        return Outcome(ActionOutcome.SUCCEEDED if ok else ActionOutcome.FAILED, run.summary())

    worker = Worker.objects.get(pk=pks[0]) if pks and len(pks) == 1 else None
    target = "all workers" if not pks else f"workers {', '.join(map(str, pks))}"
    entry = perform(
        user, ActionName.REFRESH_WORKER, worker, call, target=str(worker or target), actor=actor
    )
    assert run is not None  # perform made the call, or raised
    return entry, run
