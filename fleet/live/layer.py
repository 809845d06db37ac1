"""The live pages' Channels layer: Channels' group API (`group_add`, `group_discard`,
`group_send`) in one process, at a cost linear in the messages delivered.

Channels' own in-memory layer scans every channel and every group membership of the process on
each `receive` and `group_send`, and deep-copies each message for each member: with a thousand
pages each following fifty rows, one change cycle cost pages × rows squared. Here a group send
touches only that group's members, a receive only its own channel, and every member gets the
same message object (messages are never changed after sending). Each channel knows its groups,
so dropping it from them costs its own memberships only.

A channel that overflows its capacity, or holds a message past `expiry`, is marked lost (its
next `receive` answers `LOST`) instead of being dropped from its groups in silence. Old marks
and memberships past `group_expiry` are swept at most every SWEEP_SECONDS.
"""

import asyncio
import secrets
import time
from collections import deque

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer

LOST = "live.lost"  # the type of the message a lost channel receives next
LOST_MESSAGE = {"type": LOST}
SWEEP_SECONDS = 5.0


class Mailbox:
    """One channel's queue of (expires, message) and the reader waiting on it, if any."""

    __slots__ = ("queue", "waiter", "capacity", "lost")

    def __init__(self, capacity: int) -> None:
        self.queue: deque[tuple[float, dict]] = deque()
        self.waiter: asyncio.Future | None = None
        self.capacity = capacity
        self.lost = False

    def qsize(self) -> int:
        return len(self.queue)

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class LiveChannelLayer(BaseChannelLayer):
    """An in-memory layer whose sends cost one queue append per member, whose full or stale
    channels are marked lost (never dropped silently), and whose `receive_many` hands a reader
    everything waiting at once, so a stream writes one feed step as one event."""

    extensions = ["groups", "flush"]

    def __init__(self, expiry=60, group_expiry=86400, capacity=100, channel_capacity=None, **kw):
        super().__init__(expiry=expiry, capacity=capacity, channel_capacity=channel_capacity, **kw)
        self.group_expiry = group_expiry
        self.channels: dict[str, Mailbox] = {}
        self.groups: dict[str, dict[str, float]] = {}  # group → channel → when it joined
        self.joined: dict[str, set[str]] = {}  # channel → its groups
        self._sweep_at = 0.0

    # Sending

    async def send(self, channel: str, message: dict) -> None:
        """Queue `message` for one channel; ChannelFull when that lost the channel."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        now = time.monotonic()
        if not self._deliver(channel, (now + self.expiry, message), now):
            self._lose(channel)
            raise ChannelFull(channel)

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        await self.group_send_many([(group, message)])

    async def group_send_many(self, messages: list[tuple[str, dict]]) -> None:
        """Send each (group, message) to its group's members, in order: one append per
        delivery, the same message object for every member, and one wake-up per reader."""
        now = time.monotonic()
        self._sweep(now)
        lost = []
        expires = now + self.expiry
        for group, message in messages:
            members = self.groups.get(group)
            if not members:
                continue
            entry = (expires, message)
            for channel in members:
                if not self._deliver(channel, entry, now):
                    lost.append(channel)
        for channel in lost:
            self._lose(channel)

    def _deliver(self, channel: str, entry: tuple[float, dict], now: float) -> bool:
        """Append to the channel's queue; False when it is full or holds a stale message
        (the caller then marks it lost). A channel already lost takes nothing more."""
        box = self.channels.get(channel)
        if box is None:
            box = self.channels[channel] = Mailbox(self.get_capacity(channel))
        elif box.lost:
            return True
        queue = box.queue
        if queue and (len(queue) >= box.capacity or queue[0][0] < now):
            box.lost = True
            return False
        queue.append(entry)
        box.wake()
        return True

    # Receiving

    async def receive(self, channel: str) -> dict:
        """The channel's next message; `LOST` once it overflowed or held one past `expiry`.
        One reader per channel."""
        self.require_valid_channel_name(channel)
        box = self.channels.get(channel)
        if box is None:
            box = self.channels[channel] = Mailbox(self.get_capacity(channel))
        self._sweep(time.monotonic())
        while not box.queue:
            box.waiter = asyncio.get_running_loop().create_future()
            try:
                await box.waiter
            finally:
                box.waiter = None
        return self._take(channel, box)

    async def receive_many(self, channel: str) -> list[dict]:
        """The channel's next message and every other one already waiting (up to a `LOST`)."""
        messages = [await self.receive(channel)]
        box = self.channels.get(channel)
        while box is not None and box.queue and messages[-1]["type"] != LOST:
            messages.append(self._take(channel, box))
        return messages

    def _take(self, channel: str, box: Mailbox) -> dict:
        expires, message = box.queue[0]
        if message["type"] != LOST and expires < time.monotonic():
            self._lose(channel)  # held too long: what waits is replaced by the mark
        _, message = box.queue.popleft()
        if not box.queue and channel not in self.joined:
            self.channels.pop(channel, None)
        return message

    async def new_channel(self, prefix: str = "specific.") -> str:
        return f"{prefix}.inmemory!{secrets.token_hex(8)}"

    # Groups

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        self.groups.setdefault(group, {})[channel] = time.monotonic()
        self.joined.setdefault(channel, set()).add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_channel_name(channel)
        self.require_valid_group_name(group)
        self._leave(group, channel)
        groups = self.joined.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self.joined[channel]

    def discard_channel(self, channel: str) -> None:
        """Forget a channel whose reader has gone: what still waits in it, the mark that it
        was lost, and any membership left."""
        self._remove_from_groups(channel)
        self.channels.pop(channel, None)

    # Losing channels, and the sweep

    def _lose(self, channel: str) -> None:
        """Out of every group, and what waits replaced by one LOST mark in the same queue (a
        reader woken but not yet running must find something). The mark lives as long as a
        group membership may; `discard_channel` removes it sooner."""
        self._remove_from_groups(channel)
        box = self.channels.get(channel)
        if box is None:
            return
        box.lost = True
        box.queue.clear()
        box.queue.append((time.monotonic() + self.group_expiry, LOST_MESSAGE))
        box.wake()

    def _remove_from_groups(self, channel: str) -> None:
        for group in self.joined.pop(channel, ()):
            self._leave(group, channel)

    def _leave(self, group: str, channel: str) -> None:
        members = self.groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self.groups[group]

    def _sweep(self, now: float) -> None:
        """At most every SWEEP_SECONDS: lose channels holding a stale message nobody came
        for, forget LOST marks nobody read for `group_expiry`, end memberships older than it."""
        if now < self._sweep_at:
            return
        self._sweep_at = now + SWEEP_SECONDS
        for channel, box in list(self.channels.items()):
            if box.queue and box.queue[0][0] < now:
                if box.queue[0][1]["type"] == LOST:
                    self.discard_channel(channel)
                else:
                    self._lose(channel)
        joined_before = now - self.group_expiry
        for group, members in list(self.groups.items()):
            for channel, joined in list(members.items()):
                if joined < joined_before:
                    self._leave(group, channel)
                    groups = self.joined.get(channel, set())
                    groups.discard(group)
                    if not groups:
                        self.joined.pop(channel, None)

    async def flush(self) -> None:
        self.channels, self.groups, self.joined = {}, {}, {}
        self._sweep_at = 0.0

    async def close(self) -> None:
        pass
