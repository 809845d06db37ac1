"""The live pages' channel layer: a channel that overflows or keeps a message too long is marked
lost (its reader hears so), never silently dropped from its groups."""

import asyncio

import pytest
from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer, get_channel_layer

from fleet.live.layer import LOST, LiveChannelLayer
from tests.live_fixtures import run


async def joined(layer, *groups: str) -> str:
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    return channel


async def next_message(layer, channel: str) -> dict:
    """The channel's next message; a channel silently dropped would wait for ever."""
    return await asyncio.wait_for(layer.receive(channel), 1)


def members(layer) -> dict[str, set[str]]:
    return {group: set(channels) for group, channels in layer.groups.items() if channels}


def test_the_project_uses_this_layer():
    assert isinstance(get_channel_layer(), LiveChannelLayer)


def test_a_channel_that_overflows_is_lost_not_silently_short():
    layer = LiveChannelLayer(capacity=2)

    async def scenario():
        channel = await joined(layer, "a", "b")
        for n in range(4):
            await layer.group_send("a", {"type": "m", "n": n})
        return channel, await next_message(layer, channel), members(layer)

    channel, first, groups = run(scenario)
    assert first == {"type": LOST}  # not message 0, as if nothing had been dropped
    assert groups == {}  # out of every group: nothing more is sent to it
    assert channel not in layer.channels  # and the mark, once read, is gone


def test_a_channel_holding_a_message_past_its_expiry_is_lost_not_silently_dropped():
    layer = LiveChannelLayer(expiry=-1)  # every message is born too old

    async def scenario():
        channel = await joined(layer, "a", "b")
        other = await joined(layer, "b")
        await layer.group_send("a", {"type": "m"})
        await layer.group_send("b", {"type": "m"})  # sending cleans up expired messages
        return channel, other, members(layer), await next_message(layer, channel)

    channel, other, groups, first = run(scenario)
    assert groups == {"b": {other}}
    assert first == {"type": LOST}


@pytest.mark.parametrize("layer_class", [InMemoryChannelLayer, LiveChannelLayer])
def test_the_in_memory_layer_would_have_dropped_the_channel_silently(layer_class):
    """What this layer is for: Channels' own layer answers the overflow with the old messages
    and nothing else, and the expiry with a channel that is in no group and never hears it."""
    layer = layer_class(capacity=1)

    async def scenario():
        channel = await joined(layer, "a")
        await layer.group_send("a", {"type": "m"})
        await layer.group_send("a", {"type": "m"})
        return await next_message(layer, channel)

    told = run(scenario) == {"type": LOST}
    assert told is (layer_class is LiveChannelLayer)


def test_a_reader_woken_for_a_message_still_gets_the_mark():
    """The reader was woken by a message that the loss then replaced: it must not go back to
    sleep on an empty queue, hearing nothing ever again."""
    layer = LiveChannelLayer(capacity=1)

    async def scenario():
        channel = await joined(layer, "a")
        reader = asyncio.create_task(layer.receive(channel))
        await asyncio.sleep(0)  # the reader waits on its empty channel
        await layer.send(channel, {"type": "m", "n": 1})  # wakes it; it has not run yet
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "m", "n": 2})
        return await asyncio.wait_for(reader, 1)

    assert run(scenario) == {"type": LOST}


def test_a_mark_nobody_reads_goes_after_the_group_expiry():
    layer = LiveChannelLayer(capacity=1, group_expiry=-1)

    async def scenario():
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "m"})
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "m"})
        lost = channel in layer.channels
        await layer.group_send("any", {"type": "m"})  # a clean-up
        return lost, channel in layer.channels

    assert run(scenario) == (True, False)


def test_a_departed_readers_channel_is_forgotten_at_once():
    layer = LiveChannelLayer()

    async def scenario():
        channel = await joined(layer, "a")
        await layer.group_send("a", {"type": "m"})
        await layer.group_discard("a", channel)
        layer.discard_channel(channel)

    run(scenario)
    assert layer.channels == {} and layer.groups == {}


def test_messages_still_flow_in_order_when_nothing_is_lost():
    layer = LiveChannelLayer(capacity=3)

    async def scenario():
        channel = await joined(layer, "a")
        for n in range(3):
            await layer.group_send("a", {"type": "m", "n": n})
        return [await next_message(layer, channel) for _ in range(3)], members(layer)

    received, groups = run(scenario)
    assert [m["n"] for m in received] == [0, 1, 2]
    assert groups == {"a": set(groups["a"])} and len(groups["a"]) == 1


class NoScans(dict):
    """A dict that fails the test when anything walks through it."""

    def _walk(self, *args):
        raise AssertionError("scanned every entry")

    __iter__ = items = values = keys = _walk


def test_sends_and_receives_touch_only_their_own_group_and_channel():
    """The cost of a delivery does not grow with the other pages of the process: nothing walks
    all channels or all memberships (Channels' in-memory layer did, on every send and receive).
    Members get the very message sent, not a copy each."""
    layer = LiveChannelLayer()

    async def scenario():
        others = [await joined(layer, f"g{n}", "fleet") for n in range(200)]
        mine, also_mine = await joined(layer, "a"), await joined(layer, "a")
        for other in others[:50]:
            await layer.send(other, {"type": "m"})  # queues that are not ours hold messages
        layer._sweep_at = float("inf")  # the periodic sweep is the one walk, at most every 5 s
        layer.channels = NoScans(layer.channels)
        layer.groups = NoScans(layer.groups)
        message = {"type": "m", "html": "<tr>…</tr>"}
        await layer.group_send("a", message)
        await layer.group_send_many([("a", message), ("nobody", message)])
        got = [await next_message(layer, mine) for _ in range(2)]
        got.append(await next_message(layer, also_mine))
        await layer.group_discard("a", mine)
        layer.discard_channel(mine)
        return message, got

    message, got = run(scenario)
    assert all(m is message for m in got)


def test_a_reader_gets_what_came_together_at_once_in_order():
    layer = LiveChannelLayer()

    async def scenario():
        channel = await joined(layer, "a", "b")
        reader = asyncio.create_task(layer.receive_many(channel))
        await asyncio.sleep(0)
        batch = [("a", {"type": "m", "n": 1}), ("b", {"type": "m", "n": 2}), ("c", {"type": "m"})]
        await layer.group_send_many(batch)
        first = await asyncio.wait_for(reader, 1)
        await layer.group_send("a", {"type": "m", "n": 3})
        return first, await asyncio.wait_for(layer.receive_many(channel), 1)

    first, second = run(scenario)
    assert [m["n"] for m in first] == [1, 2]  # one wake-up for the step, in order
    assert [m["n"] for m in second] == [3]


def test_receive_many_stops_at_the_loss_mark():
    layer = LiveChannelLayer(capacity=2)

    async def scenario():
        channel = await joined(layer, "a")
        await layer.group_send_many([("a", {"type": "m", "n": n}) for n in range(3)])
        return await asyncio.wait_for(layer.receive_many(channel), 1)

    assert run(scenario) == [{"type": LOST}]
