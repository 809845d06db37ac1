"""A running cycle's progress (workers observed / total), published about once a second.

The CML phase runs in an event loop that must not touch the database, so a small thread does
the writing: it stamps the run's `workers_done` and logs a fleet-level change, which the live
pages turn into a moving progress bar.
"""

import threading
from types import TracebackType

from django.db import connection, transaction
from django.db.models import F

from fleet.models import CollectionRun
from fleet.models.changes import record_fleet_change

INTERVAL_SECONDS = 1.0


class ProgressReporter:
    """Counts workers done and adds them to the run's `workers_done` about once a second;
    `published` is how many it has added so far."""

    def __init__(self, run: CollectionRun, interval: float | None = None) -> None:
        self.run = run
        self.interval = interval or INTERVAL_SECONDS
        self.done = 0
        self._published = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def published(self) -> int:
        return self._published

    def worker_done(self) -> None:
        with self._lock:
            self.done += 1

    def __enter__(self) -> "ProgressReporter":
        # Inside a transaction (a test, or a caller's atomic block) the run is not committed:
        # nobody else could see progress, and a second connection could only wait on locks.
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._loop, name="cycle-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                self._publish()
        finally:
            connection.close()  # this thread's own connection

    def _publish(self) -> None:
        with self._lock:
            done = self.done
        if done == self._published:
            return
        with transaction.atomic():  # added, not set: the shards of a cycle report side by side
            CollectionRun.objects.filter(pk=self.run.pk).update(
                workers_done=F("workers_done") + (done - self._published)
            )
            record_fleet_change()
        self._published = done
