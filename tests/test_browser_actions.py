"""A stop seen live on a second page: the worker goes "stopping…" at once, then "Stopped" when
the django-q2 task settles it (run here in a thread, as a cluster would)."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from tests.action_fixtures import of_state, run_queued
from tests.browser_fixtures import log_in, server_user

pytestmark = pytest.mark.browser


def in_thread(function):
    """Run in a thread of its own: Playwright's event loop occupies this one."""

    def run():
        try:
            return function()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def test_a_stop_is_seen_live_on_a_second_page(web, chromium, collected):
    worker = of_state(collected, "running")
    watcher = chromium.new_context().new_page()
    actor = chromium.new_context().new_page()
    watcher.add_init_script(
        'document.addEventListener("htmx:sseOpen", () => (window.sseOpened = 1));'
    )
    try:
        log_in(watcher, web, *server_user("vera", "viewer"))
        watcher.wait_for_function("() => window.sseOpened === 1")
        watcher.evaluate("window.sameDocument = true")
        row = f"#worker-{worker.pk}-row"
        assert "Running" in watcher.inner_text(row)

        log_in(actor, web, *server_user("otto", "operator"))
        actor.goto(f"{web}/workers/{worker.pk}/")
        actor.click(f"#worker-{worker.pk}-aws button:has-text('Stop')")
        actor.wait_for_function(
            "() => document.querySelector('#toast').innerText.includes('EC2 accepted')"
        )
        watcher.wait_for_function(
            f"() => document.querySelector('{row}').innerText.includes('stopping…')", timeout=15000
        )
        assert watcher.locator(f"{row} time[data-elapsed]").count() == 1

        in_thread(run_queued)  # the settle task
        watcher.wait_for_function(
            f"() => document.querySelector('{row}').innerText.includes('Stopped')", timeout=15000
        )
        assert "stopping…" not in watcher.inner_text(row)
        assert watcher.evaluate("window.sameDocument") is True  # swapped live, never reloaded
        actor.wait_for_function(
            f"() => document.querySelector('#worker-{worker.pk}-actions').innerText"
            ".includes('is stopped')",
            timeout=15000,
        )
    finally:
        watcher.context.close()
        actor.context.close()
