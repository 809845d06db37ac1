"""A warned idle worker, snoozed from its page: the warning leaves that page and the list's
row live, without a reload."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.models import Worker
from tests.action_fixtures import of_state
from tests.browser_fixtures import log_in, server_user
from tests.test_browser_actions import in_thread

pytestmark = pytest.mark.browser


def test_a_snooze_takes_the_warning_off_every_page(web, chromium, collected):
    worker = of_state(collected, "running")
    now = timezone.now()
    in_thread(
        lambda: Worker.objects.filter(pk=worker.pk).update(
            auto_pause=True, idle_since=now, idle_stop_at=now + timedelta(minutes=10)
        )
    )
    watcher = chromium.new_context().new_page()
    actor = chromium.new_context().new_page()
    watcher.add_init_script(
        'document.addEventListener("htmx:sseOpen", () => (window.sseOpened = 1));'
    )
    viewer = server_user("vera", "viewer")
    try:
        log_in(watcher, web, *viewer)
        watcher.wait_for_function("() => window.sseOpened === 1")
        watcher.evaluate("window.sameDocument = true")
        row = f"#worker-{worker.pk}-row"
        assert "stops " in watcher.inner_text(row)

        log_in(actor, web, *server_user("otto", "operator"))
        actor.goto(f"{web}/workers/{worker.pk}/")
        section = f"#worker-{worker.pk}-idle"
        assert "is idle: it stops at" in actor.inner_text(section)
        actor.click(f"{section} button:has-text('Keep running 1 h')")
        actor.wait_for_function(
            f"() => document.querySelector('{section}').innerText.includes('snoozed until')"
        )
        assert "stops at" not in actor.inner_text(section)

        watcher.wait_for_function(
            f"() => !document.querySelector('{row}').innerText.includes('stops ')", timeout=15000
        )
        assert watcher.evaluate("window.sameDocument") is True
        viewer_page = chromium.new_context().new_page()
        log_in(viewer_page, web, *viewer)
        viewer_page.goto(f"{web}/workers/{worker.pk}/")
        assert not viewer_page.locator(
            f"{section} button:has-text('Keep running 1 h')"
        ).is_visible()
        viewer_page.context.close()
    finally:
        watcher.context.close()
        actor.context.close()
