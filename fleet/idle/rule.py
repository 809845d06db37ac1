"""The idle rule, as a pure function of one worker's state and the time.

A running worker is idle when nobody has used its CML for IDLE_THRESHOLD_MINUTES, counted from
the later of its last activity and its last start. An idle worker with auto-pause on, not
snoozed, whose activity could be read recently, is warned (`idle_stop_at`, IDLE_WARNING_MINUTES
ahead); once that time comes it is stopped, unless another action is under way on it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from fleet.durations import in_words
from fleet.models import Worker, WorkerStatus


@dataclass(frozen=True)
class IdleRule:
    threshold: timedelta
    warning: timedelta
    activity_fresh: timedelta  # activity read longer ago than this counts as unknown

    @classmethod
    def configured(cls) -> "IdleRule":
        return cls(
            threshold=timedelta(minutes=settings.IDLE_THRESHOLD_MINUTES),
            warning=timedelta(minutes=settings.IDLE_WARNING_MINUTES),
            activity_fresh=timedelta(seconds=2 * settings.ACTIVITY_INTERVAL_SECONDS + 300),
        )

    def sentence(self) -> str:
        """The rule in one sentence, for the worker page."""
        return (
            f"A running worker is idle after {in_words(self.threshold)} without lab, node or "
            "user activity on its CML (counted from its last start if that is later); with "
            f"auto-pause on it is warned, then stopped {in_words(self.warning)} later unless "
            "someone uses it or snoozes it."
        )

    def idle_since(self, worker: Worker, now: datetime) -> datetime | None:
        """When the worker's idleness began (threshold after its last use), or None."""
        if worker.status != WorkerStatus.RUNNING:
            return None
        used = worker.last_used_at
        if used is None or now - used < self.threshold:
            return None
        return used + self.threshold

    def activity_known(self, worker: Worker, now: datetime) -> bool:
        """The telemetry was read recently (a failed read does not move `activity_read_at`)."""
        read = worker.activity_read_at
        return read is not None and now - read <= self.activity_fresh

    def decide(self, worker: Worker, now: datetime) -> "Decision":
        """What the idle pass should do with this worker now."""
        idle_since = self.idle_since(worker, now)
        snoozed = worker.snooze_until is not None and worker.snooze_until > now
        if idle_since is None or not worker.auto_pause or snoozed:
            return Decision(idle_since, None, stop=False)
        if not self.activity_known(worker, now):
            return Decision(idle_since, None, stop=False)
        stop_at = worker.idle_stop_at or now + self.warning
        due = now >= stop_at and not worker.pending_action
        return Decision(idle_since, stop_at, stop=due)


@dataclass(frozen=True)
class Decision:
    idle_since: datetime | None
    idle_stop_at: datetime | None  # the warning: auto-pause stops the worker then
    stop: bool
