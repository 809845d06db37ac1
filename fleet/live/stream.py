"""The SSE stream of a page: `GET /events/?workers=1,2,3[&fragments=row][&fleet_chart=24h]`, one
connection per page, carrying the fresh fragments of exactly the workers it shows (all their
fragments, or the ones named), the fleet-wide events (cycle progress, workers added or removed)
and, when asked, the fleet chart over one window.
`fleet.live.feed` renders and sends them.

What arrives together goes out together: the worker fragments of one feed step (or of a
catch-up, or of several steps a slow page fell behind on) are one `event: fragments` whose data
holds each fragment's out-of-band form (`hx-swap-oob`), which htmx swaps by id; a page whose
fifty rows changed costs one event and one write, not fifty. The fleet-wide events keep their
own names (`fleet-progress`, `fleet-changed`) in the same write: pages that do not show them
ignore them. How it stays bounded and never silent: docs/architecture.md."""

import asyncio
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_not_required
from django.contrib.sessions.models import Session
from django.db import connection
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from fleet.live.charts import parse_window
from fleet.live.feed import (
    FLEET_GROUP,
    FRAGMENT,
    LINE_BREAK_RE,
    ChangeFeed,
    Message,
    render_changes,
    start_feed,
)
from fleet.live.fragments import WORKER_FRAGMENTS, event_name, fleet_chart_event
from fleet.live.layer import LOST
from fleet.models import Change, ChangeKind

log = logging.getLogger(__name__)

PERMISSION_BACKEND = "django.contrib.auth.backends.ModelBackend"

MAX_WORKERS = 200
KEEP_ALIVE_SECONDS = 15.0
MAX_STREAM_SECONDS = 30 * 60.0
STREAM_JITTER = 0.2  # a stream lives MAX_STREAM_SECONDS × (1 ± this)
RETRY_MILLISECONDS = 3000
VIEW_PERMISSION = "fleet.view_worker"
WORKER_ID_RE = re.compile(r"[1-9][0-9]{0,17}")  # a positive BigAutoField value
LAST_EVENT_ID_RE = re.compile(r"[0-9]{1,18}")  # a change id: fits a BigAutoField
FRAGMENTS_EVENT = "fragments"  # the one event of a page's worker fragments that came together


def parse_worker_ids(value: str | None) -> list[int]:
    """The distinct worker ids of `?workers=1,2,3`; ValueError says what is wrong."""
    if not value:
        raise ValueError("Say which workers to follow: ?workers=1,2,3")
    parts = value.split(",")
    if not all(WORKER_ID_RE.fullmatch(part) for part in parts):
        raise ValueError("workers must be worker ids separated by commas, such as ?workers=1,2,3")
    ids = sorted({int(part) for part in parts})
    if len(ids) > MAX_WORKERS:
        raise ValueError(f"Follow at most {MAX_WORKERS} workers on one stream.")
    return ids


def parse_fragments(value: str | None) -> list[str]:
    """The fragments named by `?fragments=row,aws`; all of them when the parameter is absent."""
    if value is None:
        return list(WORKER_FRAGMENTS)
    names = value.split(",")
    if not names or not set(names) <= set(WORKER_FRAGMENTS):
        raise ValueError(f"fragments must be some of {', '.join(WORKER_FRAGMENTS)}")
    return sorted(set(names))


def sse_event(message: Message) -> str:
    """One message of the feed as an SSE event; each line of its HTML on a `data:` line."""
    data = message.get("data") or "".join(
        f"data: {line}\n" for line in LINE_BREAK_RE.split(message["html"])
    )
    return f"id: {message['id']}\nevent: {message['event']}\n{data}\n"


def sse_events(messages: list[Message]) -> tuple[str, bool]:
    """What a stream writes for messages that came together, and whether it ends there: the
    worker fragments as one `fragments` event (their out-of-band forms, under the newest id),
    each fleet-wide message as its own event, in order of id; or, when any of them says the
    page cannot be kept current, the reload event alone (the page reloads whole anyway)."""
    for message in messages:
        if message["type"] != FRAGMENT:
            return _reload(message), True
    fragments = [message for message in messages if message.get("oob")]
    events = [(message["id"], sse_event(message)) for message in messages if not message.get("oob")]
    if fragments:
        newest = max(message["id"] for message in fragments)
        data = "".join(message["data"] for message in fragments)
        events.append((newest, f"id: {newest}\nevent: {FRAGMENTS_EVENT}\n{data}\n"))
    events.sort(key=lambda pair: pair[0])
    return "".join(text for _, text in events), False


def reload_event(reason: str) -> str:
    """The event that makes the page reload. No `id:`: the page is not current to any change."""
    return f"event: reload\ndata: {reason}\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    """A change id given by the browser, or None for anything else (absent, letters, negative,
    too long for a change id): then the stream starts from the end of the log."""
    return int(value) if value and LAST_EVENT_ID_RE.fullmatch(value) else None


def stream_lifetime(draw: Callable[[], float] | None = None) -> float:
    """How long one stream lives: MAX_STREAM_SECONDS ± STREAM_JITTER; `draw` gives a number in
    [0, 1), `random.random` by default."""
    fraction = (draw or random.random)()
    return MAX_STREAM_SECONDS * (1 + STREAM_JITTER * (2 * fraction - 1))


@dataclass(frozen=True)
class Viewer:
    """Who a stream serves: checked as the stream opens, and again at each keep-alive."""

    user_pk: int
    session_key: str | None

    @staticmethod
    def allowed(viewers: list["Viewer"]) -> set["Viewer"]:
        """Which of these viewers may still watch, in two queries however many they are: their
        sessions still there (not logged out, not expired; sessions are in the database, Django's
        default engine) and their users active with the view permission."""
        sessions = set(
            Session.objects.filter(
                session_key__in={viewer.session_key for viewer in viewers},
                expire_date__gt=timezone.now(),
            ).values_list("session_key", flat=True)
        )
        # Permissions live in the model backend (the first backend is axes' login throttle).
        users = get_user_model()._default_manager.with_perm(
            VIEW_PERMISSION, backend=PERMISSION_BACKEND
        )
        watching = set(
            users.filter(pk__in={viewer.user_pk for viewer in viewers}).values_list("pk", flat=True)
        )
        return {v for v in viewers if v.session_key in sessions and v.user_pk in watching}


@require_GET
@login_not_required  # a stream answers 403 itself: a redirect to the login page is no use here
async def events(request: HttpRequest) -> HttpResponse:
    feed = await start_feed()
    async with feed.openings:
        viewer = await sync_to_async(_viewer)(request)
    if isinstance(viewer, HttpResponse):
        return viewer
    try:
        ids = parse_worker_ids(request.GET.get("workers"))
        fragments = parse_fragments(request.GET.get("fragments"))
        fleet_chart = parse_window(request.GET.get("fleet_chart"))
    except ValueError as error:
        return _refuse(400, str(error))
    groups = [event_name(pk, fragment) for pk in ids for fragment in fragments]
    if fleet_chart:
        groups.append(fleet_chart_event(fleet_chart))
    last_id = _last_event_id(request)
    body = stream([*groups, FLEET_GROUP], ids, last_id, feed, viewer, stream_lifetime())
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _viewer(request: HttpRequest) -> Viewer | HttpResponse:
    """In the request's thread: who follows the workers, or a 403 saying why they may not.
    Closes the thread's database connection, which the stream must not hold."""
    try:
        if not request.user.is_authenticated:
            return _refuse(403, "Log in to follow live updates.")
        if not request.user.has_perm(VIEW_PERMISSION):
            return _refuse(403, "You may not view workers.")
        return Viewer(request.user.pk, request.session.session_key)
    finally:
        connection.close()


async def stream(
    groups: list[str],
    ids: list[int],
    last_id: int | None,
    feed: ChangeFeed,
    viewer: Viewer,
    lifetime: float,
):
    """The body of the stream: join the groups, then send what was missed, then each message
    as it comes, with a keep-alive comment (after a re-check of the viewer) every
    KEEP_ALIVE_SECONDS; end with a reload event when the page can no longer be kept current."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + lifetime
    feed.streams += 1
    try:
        for group in groups:
            await layer.group_add(group, channel)
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        # After joining: a change committed from here on comes through the channel too.
        async with feed.openings:
            missed, top = await sync_to_async(_opening)(groups, ids, last_id)
        if missed:
            text, ended = sse_events(missed)
            yield text
            if ended:
                return
        yield f"id: {top}\n\n"
        check_at = loop.time() + KEEP_ALIVE_SECONDS
        while (now := loop.time()) < ends_at:
            if now >= check_at:
                if not await _still_allowed(feed, viewer):
                    yield reload_event("signed-out")
                    return
                yield ": keep-alive\n\n"
                check_at = now + KEEP_ALIVE_SECONDS
                continue
            try:
                async with asyncio.timeout(min(check_at, ends_at) - now):  # no task per wait
                    messages = await layer.receive_many(channel)
            except TimeoutError:
                continue
            text, ended = sse_events(messages)
            yield text
            if ended:
                return
    finally:
        feed.streams -= 1
        for group in groups:
            await layer.group_discard(group, channel)
        layer.discard_channel(channel)
        log.debug("stream closed; left %d groups", len(groups))


def _reload(message: Message) -> str:
    """The feed's reload or the layer's LOST as the reload event, with its reason."""
    return reload_event("fell-behind" if message["type"] == LOST else message["reason"])


async def _still_allowed(feed: ChangeFeed, viewer: Viewer) -> bool:
    """The keep-alive re-check, on the feed's thread and connection. When the database cannot
    answer, the stream goes on: nothing reaches it then anyway, and the next check decides."""
    try:
        return await feed.query_batched(Viewer.allowed, viewer)
    except Exception:
        log.warning("could not re-check the user of a stream", exc_info=True)
        return True


def _opening(groups: list[str], ids: list[int], last_id: int | None) -> tuple[list[Message], int]:
    """In the request's thread, the last database work of a stream: the current fragments (of
    those in `groups`) of the workers changed since `last_id` (a reconnecting browser), and the
    end of the log, sent as a bare `id:` line so that a browser that reconnects after hearing
    nothing catches up too. The catch-up covers the fleet-level changes (progress) and the
    added and removed workers, as the live messages do.
    Closes this thread's connection: a stream must not hold one while it waits."""
    try:
        top = Change.objects.aggregate(top=Max("id"))["top"] or 0
        if last_id is None:
            return [], top
        missed = Change.objects.filter(id__gt=last_id).filter(
            Q(worker_id__in=ids)
            | Q(kind=ChangeKind.FLEET)
            | Q(kind__in=[ChangeKind.CREATED, ChangeKind.DELETED])
        )
        shown = set(groups)
        rendered = render_changes(list(missed.order_by("id")), shown)
        return [message for group, message in rendered if group in shown], top
    finally:
        connection.close()


def _last_event_id(request: HttpRequest) -> int | None:
    """The browser's Last-Event-ID when it reconnects, else the page's `?last_event_id=` (the
    log position it was rendered at); a value that is not a change id counts as absent."""
    header = parse_last_event_id(request.headers.get("Last-Event-ID"))
    if header is not None:
        return header
    return parse_last_event_id(request.GET.get("last_event_id"))


def _refuse(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
