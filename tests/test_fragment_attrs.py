"""A fragment's attributes on the page come from the feed's own naming rule."""

import pytest

from fleet.live.fragments import WORKER_FRAGMENTS, event_name, render_worker_fragment


@pytest.mark.parametrize("fragment", list(WORKER_FRAGMENTS))
def test_each_fragment_is_named_as_the_feed_names_its_event(worker, fragment):
    name = event_name(worker.pk, fragment)
    html = render_worker_fragment(worker, fragment)
    opening = html.split(">", 1)[0]
    assert f'id="{name}" hx-swap="outerHTML"' in opening
    assert "hx-swap-oob" not in opening
    # Live updates find it by id (out-of-band swaps in one event), not by a listener of its
    # own: a listener per fragment would pile up on the stream as fragments are replaced.
    assert "sse-swap" not in opening


@pytest.mark.parametrize("fragment", list(WORKER_FRAGMENTS))
def test_out_of_band_fragments_say_so(worker, fragment):
    opening = render_worker_fragment(worker, fragment, oob=True).split(">", 1)[0]
    assert 'hx-swap-oob="true"' in opening
