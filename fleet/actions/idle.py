"""The idle controls an operator sets on a worker, each an audited action: snooze auto-pause
for 1, 2 or 4 hours, turn auto-pause on or off, and mute the worker's alerts for a while."""

from datetime import timedelta

from django.utils import timezone
from django.utils.formats import date_format

from fleet.actions.audit import Outcome, perform, set_worker
from fleet.models import ActionEntry, ActionName, ActionOutcome, Worker

SNOOZE_HOURS = (1, 2, 4)
MUTE_HOURS = (1, 4, 24, 168)


def snooze(user, worker: Worker, hours: int) -> ActionEntry:
    """Keep the worker running `hours` more whatever the idle rule says (0: end the snooze)."""
    if hours and hours not in SNOOZE_HOURS:
        raise ValueError(f"Snooze for {', '.join(map(str, SNOOZE_HOURS))} hours, or 0 to end it.")
    until = timezone.now() + timedelta(hours=hours) if hours else None
    message = (
        f"Auto-pause of {worker} snoozed until {_at(until)}."
        if until
        else (f"Snooze of {worker} ended.")
    )
    return perform(
        user,
        ActionName.SNOOZE_WORKER,
        worker,
        lambda: Outcome(
            ActionOutcome.SUCCEEDED,
            message,
            set_worker(worker, snooze_until=until, idle_stop_at=None),
        ),
    )


def set_auto_pause(user, worker: Worker, on: bool) -> ActionEntry:
    message = f"Auto-pause {'on' if on else 'off'} for {worker}."
    values = {"auto_pause": on} if on else {"auto_pause": False, "idle_stop_at": None}
    return perform(
        user,
        ActionName.SET_AUTO_PAUSE,
        worker,
        lambda: Outcome(ActionOutcome.SUCCEEDED, message, set_worker(worker, **values)),
    )


def mute(user, worker: Worker, hours: int) -> ActionEntry:
    """Silence the worker's alerts for `hours` (0: unmute); its row is greyed meanwhile."""
    if hours and hours not in MUTE_HOURS:
        raise ValueError(f"Mute for {', '.join(map(str, MUTE_HOURS))} hours, or 0 to unmute.")
    until = timezone.now() + timedelta(hours=hours) if hours else None
    message = (
        f"Alerts of {worker} muted until {_at(until)}."
        if until
        else (f"Alerts of {worker} unmuted.")
    )
    return perform(
        user,
        ActionName.MUTE_WORKER,
        worker,
        lambda: Outcome(ActionOutcome.SUCCEEDED, message, set_worker(worker, muted_until=until)),
    )


def _at(moment) -> str:
    return date_format(timezone.localtime(moment), "D H:i T")
