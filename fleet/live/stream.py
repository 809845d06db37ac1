"""The SSE stream of a page: `GET /events/?workers=1,2,3[&fragments=row]`, one connection per
page, carrying the fresh fragments of exactly the workers it shows (all their fragments, or the
ones named) as `event: worker-<pk>-<fragment>` for htmx's `sse-swap`, and the fleet-wide events
(cycle progress, workers added or removed). `fleet.live.feed` renders and sends them.

The stream holds no database connection: the session is checked and the missed fragments are
read before it starts, and then it only waits on its channel of the in-memory layer. Django
cancels it when the browser goes away (daphne reports the disconnect), and the `finally` leaves
the groups. It ends itself after MAX_STREAM_SECONDS; the browser reconnects at once (sending
Last-Event-ID), so the session is checked again and nothing is missed.

Memory for a slow browser stays bounded: its channel holds at most the layer's `capacity`
messages (settings.CHANNEL_LAYERS) and the layer drops what a full channel cannot take, which
is safe because each fragment carries full state. daphne does not push back on writes, so what
a stalled connection has not read waits in its socket buffer, for at most one stream's life.
"""

import asyncio
import contextlib
import logging
import re

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.db.models import Max, Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_GET

from fleet.live.feed import FLEET_GROUP, Message, render_changes, start_feed
from fleet.live.fragments import WORKER_FRAGMENTS, event_name
from fleet.models import FLEET_CHANGE, Change, ChangeKind

log = logging.getLogger(__name__)

MAX_WORKERS = 200
KEEP_ALIVE_SECONDS = 15.0
MAX_STREAM_SECONDS = 30 * 60.0
RETRY_MILLISECONDS = 3000
WORKER_ID_RE = re.compile(r"[1-9][0-9]{0,17}")  # a positive BigAutoField value
LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")  # the line ends of the SSE format


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
    data = "".join(f"data: {line}\n" for line in LINE_BREAK_RE.split(message["html"]))
    return f"id: {message['id']}\nevent: {message['event']}\n{data}\n"


@require_GET
@login_not_required  # a stream answers 403 itself: a redirect to the login page is no use here
async def events(request: HttpRequest) -> HttpResponse:
    feed = await start_feed()
    async with feed.openings:
        refusal = await sync_to_async(_refusal)(request)
    if refusal:
        return _refuse(*refusal)
    try:
        ids = parse_worker_ids(request.GET.get("workers"))
        fragments = parse_fragments(request.GET.get("fragments"))
    except ValueError as error:
        return _refuse(400, str(error))
    groups = [event_name(pk, fragment) for pk in ids for fragment in fragments]
    body = stream([*groups, FLEET_GROUP], ids, _last_event_id(request), feed.openings)
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response


def _refusal(request: HttpRequest) -> tuple[int, str] | None:
    """In the request's thread: why this user may not follow workers, if they may not. Closes
    the thread's database connection, which the stream must not hold."""
    try:
        if not request.user.is_authenticated:
            return 403, "Log in to follow live updates."
        if not request.user.has_perm("fleet.view_worker"):
            return 403, "You may not view workers."
        return None
    finally:
        connection.close()


async def stream(
    groups: list[str],
    ids: list[int],
    last_id: int | None,
    openings: asyncio.Semaphore | None = None,
):
    """The body of the stream: join the groups, then send what was missed, then each message
    as it comes, with a keep-alive comment when there is none for a while."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    loop = asyncio.get_running_loop()
    ends_at = loop.time() + MAX_STREAM_SECONDS
    try:
        for group in groups:
            await layer.group_add(group, channel)
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        # After joining: a change committed from here on comes through the channel too.
        async with openings or contextlib.nullcontext():
            opening = await sync_to_async(_opening)(groups, ids, last_id)
        for text in opening:
            yield text
        while (left := ends_at - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(
                    layer.receive(channel), min(KEEP_ALIVE_SECONDS, left)
                )
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield sse_event(message)
    finally:
        for group in groups:
            await layer.group_discard(group, channel)
        log.debug("stream closed; left %d groups", len(groups))


def _opening(groups: list[str], ids: list[int], last_id: int | None) -> list[str]:
    """In the request's thread, the last database work of a stream: the current fragments (of
    those in `groups`) of the workers changed since `last_id` (a reconnecting browser), and an
    `id:` line with the end of the log, so that a browser that reconnects after hearing nothing
    catches up too.
    Closes this thread's connection: a stream must not hold one while it waits."""
    try:
        top = Change.objects.aggregate(top=Max("id"))["top"] or 0
        texts = []
        if last_id is not None:
            missed = Change.objects.filter(id__gt=last_id).filter(
                Q(worker_id__in=ids)
                | Q(worker_id=FLEET_CHANGE)
                | Q(kind__in=[ChangeKind.CREATED, ChangeKind.DELETED])
            )
            rendered = render_changes(list(missed.order_by("id")))
            shown = set(groups)
            texts = [sse_event(message) for group, message in rendered if group in shown]
        return [*texts, f"id: {top}\n\n"]
    finally:
        connection.close()


def _last_event_id(request: HttpRequest) -> int | None:
    """The browser's Last-Event-ID when it reconnects (or `?last_event_id=`), if it is ours."""
    value = request.headers.get("Last-Event-ID") or request.GET.get("last_event_id") or ""
    return int(value) if value.isascii() and value.isdigit() else None


def _refuse(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
