"""The live pages' Channels layer: Channels' in-memory layer, except that a channel that
overflows or holds a message past `expiry` is marked lost (its next `receive` answers
`LOST`) instead of being dropped from its groups in silence."""

import time

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer

LOST = "live.lost"  # the type of the message a lost channel receives next


class LiveChannelLayer(InMemoryChannelLayer):
    """InMemoryChannelLayer whose full or stale channels are marked lost, never dropped."""

    async def send(self, channel: str, message: dict) -> None:
        try:
            await super().send(channel, message)
        except ChannelFull:
            self._lose(channel)
            raise

    def discard_channel(self, channel: str) -> None:
        """Forget a channel whose reader has gone (after it left its groups): what still waits
        in it, or the mark that it was lost, would otherwise stay until it expires."""
        self.channels.pop(channel, None)

    def _lose(self, channel: str) -> None:
        """Replace what waits in the channel with one LOST message, in the same queue: a reader
        woken for a message but not yet running must find something when it runs. The mark
        lives as long as a group membership may; `discard_channel` removes it sooner."""
        self._remove_from_groups(channel)
        queue = self.channels.get(channel)
        if queue is None:
            return
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait((time.time() + self.group_expiry, {"type": LOST}))

    def _clean_expired(self) -> None:
        """The in-memory layer's clean-up, with a lost channel where it dropped a channel from
        its groups; a LOST mark nobody read for `group_expiry` goes with its channel."""
        now = time.time()
        for channel, queue in list(self.channels.items()):
            if queue.empty():
                continue
            expires, message = queue._queue[0]
            if expires >= now:
                continue
            if message.get("type") == LOST:
                self.channels.pop(channel, None)
            else:
                self._lose(channel)
        joined_before = int(now) - self.group_expiry
        for channels in self.groups.values():
            for name, joined in list(channels.items()):
                if joined and joined < joined_before:
                    channels.pop(name, None)
