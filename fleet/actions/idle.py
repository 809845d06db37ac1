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
    until = _until(hours, SNOOZE_HOURS, "Snooze for {}, or 0 to end it.")
    message = (
        f"Auto-pause of {worker} snoozed until {_at(until)}."
        if until
        else (f"Snooze of {worker} ended.")
    )
    values = {"snooze_until": until, "idle_stop_at": None}
    return _set(user, ActionName.SNOOZE_WORKER, worker, message, values)


def set_auto_pause(user, worker: Worker, on: bool) -> ActionEntry:
    message = f"Auto-pause {'on' if on else 'off'} for {worker}."
    values = {"auto_pause": on} if on else {"auto_pause": False, "idle_stop_at": None}
    return _set(user, ActionName.SET_AUTO_PAUSE, worker, message, values)


def mute(user, worker: Worker, hours: int) -> ActionEntry:
    """Silence the worker's alerts for `hours` (0: unmute); its row is greyed meanwhile."""
    until = _until(hours, MUTE_HOURS, "Mute for {}, or 0 to unmute.")
    message = (
        f"Alerts of {worker} muted until {_at(until)}."
        if until
        else (f"Alerts of {worker} unmuted.")
    )
    return _set(user, ActionName.MUTE_WORKER, worker, message, {"muted_until": until})


def _until(hours: int, allowed: tuple[int, ...], refusal: str):
    """`hours` from now (None for 0); ValueError with `refusal` for an hour count not offered."""
    if hours and hours not in allowed:
        raise ValueError(refusal.format(", ".join(map(str, allowed)) + " hours"))
    return timezone.now() + timedelta(hours=hours) if hours else None


def _set(user, action: str, worker: Worker, message: str, values: dict) -> ActionEntry:
    return perform(
        user,
        action,
        worker,
        lambda: Outcome(ActionOutcome.SUCCEEDED, message, set_worker(worker, **values)),
    )


def _at(moment) -> str:
    return date_format(timezone.localtime(moment), "D H:i T")
