"""The change feed: each web process reads the change log and sends every change's fresh
fragments to the Channels groups of the browsers it serves (`fleet.live.stream`). A fragment's
group has the name of its event, `worker-<pk>-<fragment>`: a page joins the groups of exactly
the fragments it shows (the list its rows, a worker page its sections)."""

import asyncio
import logging
import re
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import psycopg
from channels.layers import get_channel_layer
from django.db import connection
from django.db.models import Max, Q
from django.template.loader import render_to_string

from fleet.live.charts import WINDOWS
from fleet.live.fragments import (
    HISTORY_FRAGMENTS,
    NEEDS_HISTORY,
    event_name,
    fleet_chart_event,
    fragments_for,
    parse_event_name,
    render_fleet_chart,
    render_worker_fragment,
)
from fleet.live.history import attach_history
from fleet.models import Change, ChangeKind, CollectionRun, LiveProcess, Worker
from fleet.models.changes import NOTIFY_CHANNEL
from fleet.models.live import REPORT_SECONDS, process_name

log = logging.getLogger(__name__)

FLEET_GROUP = "fleet"  # every stream: cycle progress, workers added or removed
PROGRESS_EVENT = "fleet-progress"
FLEET_CHANGED_EVENT = "fleet-changed"
POLL_SECONDS = 1.0
BATCH_SECONDS = 0.05  # streams' checks due within this share one query
OPENINGS_AT_ONCE = 8
RESTART_SECONDS = 1.0
START_TIMEOUT_SECONDS = 10.0
# On PostgreSQL ids are taken at insert but become visible at commit, so a lower id can appear
# after a higher one (two transactions at once). Ids skipped over are looked for again for
# this long; after it they were rolled back. At most MAX_GAPS ids are looked for: past that
# (a jump in the id sequence) the lowest are given up and every page reloads, in case one of
# them was a change still to commit.
GAP_SECONDS = 10.0
MAX_GAPS = 2000

FRAGMENT = "fleet.fragment"
RELOAD = "fleet.reload"
T = TypeVar("T")
# {"type": FRAGMENT, "event", "id", "html", "data", "oob"} or {"type": RELOAD, "id", "reason"}.
# A worker fragment's html is its out-of-band form (`oob` true): a stream sends all the worker
# fragments of one step in one SSE event. `data` is the html as SSE `data:` lines, made once
# here for every stream.
Message = dict
LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # the line ends of the SSE format


@dataclass
class Affected:
    """What a batch of change rows touches: known from the rows alone, without the database."""

    workers: dict[int, tuple[int, set[str]]] = field(default_factory=dict)  # pk → (id, fragments)
    progress_id: int | None = None
    fleet_changed_id: int | None = None
    samples_id: int | None = None  # a cycle ended having added samples: the charts move on

    @classmethod
    def of(cls, changes: list[Change]) -> "Affected":
        affected = cls()
        for change in changes:
            if change.kind == ChangeKind.FLEET:
                affected.progress_id = change.id
                if "samples" in change.fields:
                    affected.samples_id = change.id
            elif change.kind in (ChangeKind.CREATED, ChangeKind.DELETED):
                affected.fleet_changed_id = change.id
            else:
                _, fragments = affected.workers.get(change.worker_id, (0, set()))
                fragments = fragments | fragments_for(change.fields)
                affected.workers[change.worker_id] = (change.id, fragments)
        return affected

    def reloads(self, reason: str) -> list[tuple[str, Message]]:
        """A reload message for every group these changes would have reached."""
        out = [
            (event_name(pk, fragment), reload_message(change_id, reason))
            for pk, (change_id, fragments) in self.workers.items()
            for fragment in sorted(fragments)
        ]
        fleet_ids = [i for i in (self.progress_id, self.fleet_changed_id) if i is not None]
        if fleet_ids:
            out.append((FLEET_GROUP, reload_message(max(fleet_ids), reason)))
        if self.samples_id is not None:
            out.extend(
                (fleet_chart_event(key), reload_message(self.samples_id, reason)) for key in WINDOWS
            )
        return out

    def with_samples(self, watched: Collection[str]) -> dict[int, tuple[int, set[str]]]:
        """The workers to render: those changed, plus, after a cycle added samples, every
        worker whose charts someone here watches (known from the watched group names)."""
        wanted = {pk: (i, set(fragments)) for pk, (i, fragments) in self.workers.items()}
        if self.samples_id is None:
            return wanted
        for group in list(watched):  # a copy: the event loop may change the layer's map
            parsed = parse_event_name(group)
            if parsed and parsed[1] in HISTORY_FRAGMENTS:
                pk, fragment = parsed
                change_id, fragments = wanted.get(pk, (0, set()))
                wanted[pk] = (max(change_id, self.samples_id), fragments | {fragment})
        return wanted


def render_changes(
    changes: list[Change], listened: Collection[str] | None = None
) -> list[tuple[str, Message]]:
    """(group, message) pairs for these change rows: each affected fragment of each worker
    rendered once (in a fixed number of queries, and one more per worker page's charts),
    carrying the id of the newest change behind it; one progress message and one "workers
    added or removed" message at most. A fragment that fails to render is logged and becomes
    a reload message for its group.

    `listened` holds the groups some stream of this process is in (None: all): only those are
    rendered. A fragment no page shows costs nothing, and the charts over a week cost more than
    the rest of a page. After a cycle added samples, the charts someone watches are rendered
    too (found among `listened`, read once per cycle)."""
    affected = Affected.of(changes)
    candidates = affected.with_samples(listened if listened is not None else ())
    wanted = {}
    for pk, (change_id, fragments) in candidates.items():
        if listened is not None:
            fragments = {f for f in fragments if event_name(pk, f) in listened}
        if fragments:
            wanted[pk] = (change_id, fragments)
    workers = list(Worker.objects.filter(pk__in=wanted).prefetch_related("labs")) if wanted else []
    attach_history([w for w in workers if wanted[w.pk][1] & NEEDS_HISTORY])
    out = []
    for worker in workers:
        change_id, fragments = wanted[worker.pk]
        for fragment in sorted(fragments):
            event = event_name(worker.pk, fragment)
            render = partial(render_worker_fragment, worker, fragment, oob=True)
            out.append((event, _rendered(event, change_id, render, oob=True)))
    if affected.progress_id is not None:
        out.append((FLEET_GROUP, _rendered(PROGRESS_EVENT, affected.progress_id, _progress)))
    if affected.fleet_changed_id is not None:
        render = partial(render_to_string, "fleet/partials/fleet_changed.html")
        out.append((FLEET_GROUP, _rendered(FLEET_CHANGED_EVENT, affected.fleet_changed_id, render)))
    if affected.samples_id is not None:
        for key in WINDOWS:
            event = fleet_chart_event(key)
            if listened is not None and event in listened:  # never for nobody: a week is costly
                render = partial(render_fleet_chart, key)
                out.append((event, _rendered(event, affected.samples_id, render)))
    return sorted(out, key=lambda pair: pair[1]["id"])


def _progress() -> str:
    run = CollectionRun.objects.latest_fleet_wide()
    stats = Worker.objects.stats()  # the stat cards ride with the progress line
    return render_to_string("fleet/partials/run_progress.html", {"run": run, "stats": stats})


def _rendered(event: str, change_id: int, render: Callable[[], str], oob: bool = False) -> Message:
    try:
        html = render()
    except Exception:
        log.exception("could not render %s for change %s; its pages reload", event, change_id)
        return reload_message(change_id, "render-failed")
    data = "".join(f"data: {line}\n" for line in LINE_BREAK_RE.split(html))
    return {
        "type": FRAGMENT,
        "event": event,
        "id": change_id,
        "html": html,
        "data": data,
        "oob": oob,
    }


def reload_message(change_id: int, reason: str) -> Message:
    """Tells a stream to have its page reload: what it shows may be stale."""
    return {"type": RELOAD, "id": change_id, "reason": reason}


class ChangeFeed:
    """Reads new change-log rows and sends their fragments to the groups of this process.

    The one process-level object of the live pages (see `start_feed`): one reader of the log,
    one database connection and one render per change for the whole process.
    """

    def __init__(self, layer=None, poll_seconds: float | None = None) -> None:
        self.layer = layer or get_channel_layer()
        self.poll_seconds = poll_seconds or POLL_SECONDS
        self.last_id: int | None = None  # None until the first step reads where the log ends
        self.gaps: dict[int, float] = {}  # ids skipped over → when first missed
        self.positioned = asyncio.Event()
        self.listening = asyncio.Event()  # LISTEN is in place (PostgreSQL)
        self.task: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="change-feed")
        # Streams opening at once (a server restart reconnects every page) take turns at their
        # short database work, so a process never needs more than this many connections for it.
        self.openings = asyncio.Semaphore(OPENINGS_AT_ONCE)
        self._batches: dict[Callable, dict] = {}  # work → item → future, see query_batched
        self._batch_tasks: set[asyncio.Task] = set()  # kept referenced until they end
        self.streams = 0  # open streams in this process, reported for /metrics
        self.reporter: asyncio.Task | None = None

    async def start(self) -> None:
        """Run the feed in the current event loop unless it runs already; return once it knows
        where the log ends, so that every change committed from now on reaches the groups."""
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self.run(), name="change feed")
        if self.reporter is None or self.reporter.done():
            self.reporter = asyncio.create_task(self.report_streams(), name="stream count")
        try:
            await asyncio.wait_for(self.positioned.wait(), START_TIMEOUT_SECONDS)
        except TimeoutError:
            log.warning("change feed not ready after %s s; streaming anyway", START_TIMEOUT_SECONDS)

    async def run(self) -> None:
        """Step on every wake-up, forever; log a failure and start again."""
        while True:
            try:
                if connection.vendor == "postgresql":
                    await self._listen()
                else:
                    await self._poll()
            except Exception:
                log.exception("change feed failed; restarting in %s s", RESTART_SECONDS)
                await asyncio.sleep(RESTART_SECONDS)

    async def report_streams(self) -> None:
        """Write this process's open stream count every REPORT_SECONDS (for /metrics)."""
        name = process_name()
        while True:
            try:
                await self.query(lambda: LiveProcess.objects.report(name, self.streams))
            except Exception:
                log.warning("could not report the open stream count", exc_info=True)
            await asyncio.sleep(REPORT_SECONDS)

    async def _poll(self) -> None:
        while True:
            await self.step()
            await asyncio.sleep(self.poll_seconds)

    async def _listen(self) -> None:
        params = connection.get_connection_params()
        for django_only in ("cursor_factory", "context"):
            params.pop(django_only, None)
        async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as listener:
            await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.listening.set()
            try:
                while True:
                    await self.step()
                    # Wake on the next NOTIFY, or after poll_seconds as a safety net.
                    async for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
                        pass
            finally:
                self.listening.clear()

    async def step(self) -> int:
        """Read the changes committed since the last step and send their fragments; return
        the number of messages sent. The first step only notes where the log ends."""
        loop = asyncio.get_running_loop()
        messages = await loop.run_in_executor(self._thread, self._read)
        self.positioned.set()
        await self.layer.group_send_many(messages)
        return len(messages)

    async def query(self, work: Callable[[], T]) -> T:
        """Run short database work of the streams (their keep-alive re-checks) on the feed's
        thread and connection, so that waiting streams need no connection of their own."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, partial(_closing_on_error, work))

    async def query_batched(self, work: Callable[[list], set], item) -> bool:
        """Whether `item` is in the set `work` answers for every item asked within
        BATCH_SECONDS: a thousand streams' keep-alive checks cost a few runs of `work` on the
        feed's thread, not a thousand queries in the way of the changes."""
        batch = self._batches.setdefault(work, {})
        if item not in batch:
            batch[item] = asyncio.get_running_loop().create_future()
            if len(batch) == 1:
                task = asyncio.create_task(self._run_batch(work))
                self._batch_tasks.add(task)
                task.add_done_callback(self._batch_tasks.discard)
        return await asyncio.shield(batch[item])

    async def _run_batch(self, work: Callable[[list], set]) -> None:
        await asyncio.sleep(BATCH_SECONDS)
        batch = self._batches.pop(work)
        try:
            answer = await self.query(partial(work, list(batch)))
        except Exception as error:
            for future in batch.values():
                future.set_exception(error)
                future.exception()  # retrieved: a stream that left no longer awaits it
        else:
            for item, future in batch.items():
                future.set_result(item in answer)

    def close(self) -> None:
        """Close the feed thread's database connection and end the thread (tests)."""
        self._thread.submit(_close_connection).result()
        self._thread.shutdown()

    def _read(self) -> list[tuple[str, Message]]:
        """In the feed's thread: the new rows, rendered for the groups this process's streams
        are in (the layer's own map, read from this thread: a stream joining meanwhile catches
        up from the log after it joined, so it misses nothing). The position moves past the rows
        read before they are rendered, so no row is ever read twice, whatever rendering does."""
        try:
            if self.last_id is None:
                self.last_id = Change.objects.aggregate(top=Max("id"))["top"] or 0
                return []
            new_or_late = Q(id__gt=self.last_id) | Q(id__in=list(self.gaps))
            changes = list(Change.objects.filter(new_or_late).order_by("id"))
        except Exception:
            connection.close()  # a broken connection is replaced; the next step reads again
            raise
        messages = []
        if self._advance([change.id for change in changes]):
            messages.append((FLEET_GROUP, reload_message(self.last_id, "changes-lost")))
        if not changes:
            return messages
        try:
            return messages + render_changes(changes, self.layer.groups)
        except Exception:
            log.exception("could not render changes %s; their pages reload", changes[0].id)
            connection.close()
            return messages + Affected.of(changes).reloads("render-failed")

    def _advance(self, ids: list[int]) -> bool:
        """Move past `ids`, noting the ids skipped over as gaps; whether gaps were given up
        to keep at most MAX_GAPS of them."""
        now = time.monotonic()
        seen = set(ids)
        top = max(seen | {self.last_id})
        first = max(self.last_id + 1, top - MAX_GAPS - len(seen))
        given_up = first > self.last_id + 1
        for change_id in range(first, top):
            if change_id not in seen:
                self.gaps[change_id] = now
        self.gaps = {
            change_id: since
            for change_id, since in self.gaps.items()
            if change_id not in seen and now - since < GAP_SECONDS
        }
        if len(self.gaps) > MAX_GAPS:
            given_up = True
            self.gaps = {i: self.gaps[i] for i in sorted(self.gaps)[-MAX_GAPS:]}
        if given_up:
            log.warning("more than %s change ids outstanding; every page reloads", MAX_GAPS)
        self.last_id = top
        return given_up


def _closing_on_error(work: Callable[[], T]) -> T:
    try:
        return work()
    except Exception:
        connection.close()  # a broken connection is replaced at the next use
        raise


def _close_connection() -> None:
    connection.close()  # the connection of the thread this runs in


_feed: ChangeFeed | None = None


async def start_feed() -> ChangeFeed:
    """This process's change feed, started by the first SSE connection.

    A lazily created per-process object, and the only one of the live pages: the feed must run
    in the server's event loop, which exists only once a request arrives, and exactly once per
    process, so that each change is read and rendered once however many browsers listen.
    """
    global _feed
    if _feed is None:
        _feed = ChangeFeed()
    await _feed.start()
    return _feed
