"""Live pages in a real browser: a committed change reaches exactly the pages that show it."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction

from fleet.collection import collect as collection
from fleet.models import Change, ChangeKind, Worker
from fleet.models.changes import record_changes
from tests.browser_fixtures import free_port, log_in, server_user, start_daphne, stop
from tests.fleet_fixtures import cml_of, running

pytestmark = pytest.mark.browser

# Recorded before the swap: after an outerHTML swap the element has left the document, so its
# htmx:sseMessage no longer bubbles up to it.
# sseEvents lists what arrived by name: each worker fragment of a `fragments` event (the ones
# that came together, swapped out of band) by its own name, other events by theirs; sseTypes
# lists the SSE events themselves.
RECORD_SSE = """
window.sseEvents = [];
window.sseTypes = [];
document.addEventListener("htmx:sseBeforeMessage", (e) => {
  window.sseTypes.push(e.detail.type);
  if (e.detail.type !== "fragments") { window.sseEvents.push(e.detail.type); return; }
  const oob = / id="(worker-[0-9]+-[a-z0-9-]+)" hx-swap="outerHTML" hx-swap-oob/g;
  for (const m of e.detail.data.matchAll(oob)) window.sseEvents.push(m[1]);
});
document.addEventListener("htmx:sseOpen", () => (window.sseOpened = (window.sseOpened || 0) + 1));
"""


def collect(*args, **kwargs):
    """Run a cycle in a thread of its own: Playwright's event loop occupies this one."""

    def run():
        try:
            return collection.collect(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def _wait_until_streaming(page):
    page.wait_for_function("() => window.sseOpened >= 1")


def test_a_row_changes_without_reloading(web, page, fleet_workers, fleet_settings):
    collect()
    bad = Worker.objects.get(pk=running(fleet_settings, fleet_workers)[0].pk)
    page.add_init_script(RECORD_SSE)
    log_in(page, web, *server_user("vera", "viewer"))
    _wait_until_streaming(page)
    page.evaluate("window.sameDocument = true")
    row = page.locator(f"#worker-{bad.pk}-row")
    assert "Available" in row.inner_text()

    cml_of(fleet_settings, bad).http_500 = True
    collect()
    page.wait_for_function(
        f"() => document.querySelector('#worker-{bad.pk}-row').innerText.includes('Unavailable')",
        timeout=15000,
    )
    # The run's end moves the progress line, and the stat cards with it.
    page.wait_for_function("() => document.querySelector('#fleet-stats .stat.bad') !== null")
    assert page.evaluate("window.sameDocument") is True  # swapped in place, never reloaded
    page.wait_for_function(
        "() => document.querySelector('#fleet-progress').innerText.includes('Last')"
    )


def test_two_pages_each_receive_only_their_own_workers_events(
    web, chromium, fleet_workers, fleet_settings
):
    collect()
    first, second = running(fleet_settings, fleet_workers)[:2]
    credentials = server_user("vera", "viewer")
    pages = {}
    for worker in (first, second):
        page = chromium.new_context().new_page()
        page.add_init_script(RECORD_SSE)
        log_in(page, web, *credentials)
        page.goto(f"{web}/workers/{worker.pk}/")
        _wait_until_streaming(page)
        pages[worker.pk] = page
    try:
        for worker in (first, second):
            cml_of(fleet_settings, worker).not_ready = True
            collect([worker.pk])
        for worker in (first, second):
            pages[worker.pk].wait_for_function(
                f"() => document.querySelector('#worker-{worker.pk}-cml').innerText"
                ".includes('Unavailable')",
                timeout=15000,
            )
        for pk, page in pages.items():
            events = page.evaluate("window.sseEvents")
            assert any(event.startswith(f"worker-{pk}-") for event in events), events
            assert all(
                event.startswith(f"worker-{pk}-") or event.startswith("fleet-") for event in events
            ), events
    finally:
        for page in pages.values():
            page.context.close()


def test_a_page_catches_up_after_the_server_restarts(
    transactional_db, page, fleet_workers, fleet_settings, static_root
):
    collect()
    worker = running(fleet_settings, fleet_workers)[0]
    port = free_port()
    env = {**fleet_settings.environment(), "STATIC_ROOT": static_root}
    server = start_daphne(port, env)
    web = f"http://127.0.0.1:{port}"
    try:
        page.add_init_script(RECORD_SSE)
        log_in(page, web, *server_user("vera", "viewer"))
        _wait_until_streaming(page)
        page.evaluate("window.sameDocument = true")
        stop(server)  # the stream drops; the browser retries every 3 s

        cml_of(fleet_settings, worker).http_500 = True
        collect([worker.pk])  # committed while no server was there to hear it

        server = start_daphne(port, env)
        page.wait_for_function(
            f"() => document.querySelector('#worker-{worker.pk}-row').innerText"
            ".includes('Unavailable')",
            timeout=20000,
        )
        assert page.evaluate("window.sseOpened") >= 2
        assert page.evaluate("window.sameDocument") is True
    finally:
        stop(server)


def test_the_live_connection_follows_the_rows_on_screen(web, page, fleet_workers, fleet_settings):
    collect()
    first, second = running(fleet_settings, fleet_workers)[:2]
    first, second = Worker.objects.get(pk=first.pk), Worker.objects.get(pk=second.pk)
    page.add_init_script(RECORD_SSE)
    log_in(page, web, *server_user("vera", "viewer"))
    _wait_until_streaming(page)
    page.fill("#search", second.instance_id)
    page.wait_for_function("() => document.querySelectorAll('tr[id$=-row]').length === 1")
    page.wait_for_function("() => window.sseOpened >= 2")  # a new stream for the new rows
    url = page.get_attribute("#worker-table", "sse-connect")
    assert f"workers={second.pk}&" in url

    page.evaluate("window.sseEvents = []")
    for worker in (first, second):
        cml_of(fleet_settings, worker).http_500 = True
    collect([first.pk, second.pk])
    page.wait_for_function(
        f"() => document.querySelector('#worker-{second.pk}-row').innerText"
        ".includes('Unavailable')",
        timeout=15000,
    )
    events = page.evaluate("window.sseEvents")
    assert f"worker-{second.pk}-row" in events
    assert f"worker-{first.pk}-row" not in events  # no longer on screen, no longer sent


def test_a_cycles_progress_bar_fills_and_completes(
    web, page, fleet_workers, fleet_settings, settings
):
    settings.COLLECT_CONCURRENCY = 1
    for worker in running(fleet_settings, fleet_workers):
        cml_of(fleet_settings, worker).latency_ms = 400
    log_in(page, web, *server_user("vera", "viewer"))
    page.add_init_script(RECORD_SSE)
    page.reload()
    _wait_until_streaming(page)
    with ThreadPoolExecutor(1) as pool:
        cycle = pool.submit(collect)
        page.wait_for_selector("#cycle-progress", timeout=15000)
        seen = {page.get_attribute("#cycle-progress", "value")}
        while not cycle.done():
            if page.locator("#cycle-progress").count():
                seen.add(page.get_attribute("#cycle-progress", "value"))
            page.wait_for_timeout(200)
        cycle.result()
    page.wait_for_function(
        "() => document.querySelector('#fleet-progress').innerText"
        ".includes('Last cycle succeeded')",
        timeout=15000,
    )
    assert len(seen - {None}) >= 2  # it moved while the cycle ran


def test_a_live_update_waits_while_the_rows_own_refresh_is_in_flight(
    web, page, fleet_workers, fleet_settings
):
    collect()
    worker = running(fleet_settings, fleet_workers)[0]
    page.add_init_script(RECORD_SSE)
    log_in(page, web, *server_user("vera", "viewer"))
    _wait_until_streaming(page)
    row = f"#worker-{worker.pk}-row"
    page.evaluate(f"document.querySelector('{row} form').classList.add('htmx-request')")
    page.evaluate(f"document.querySelector('{row}').dataset.old = 'yes'")

    cml_of(fleet_settings, worker).http_500 = True
    collect([worker.pk])
    page.wait_for_function(f"() => window.sseEvents.includes('worker-{worker.pk}-row')")
    assert page.get_attribute(row, "data-old") == "yes"  # left alone: its Refresh answers

    page.evaluate(f"document.querySelector('{row} form').classList.remove('htmx-request')")
    cml_of(fleet_settings, worker).http_500 = False
    collect([worker.pk])
    page.wait_for_function(f"() => document.querySelector('{row}').dataset.old === undefined")


@pytest.mark.usefixtures("change_ids_reset")
def test_a_page_the_server_can_no_longer_keep_current_reloads(
    web, page, fleet_workers, fleet_settings
):
    """The server's `event: reload` (here: the feed gave up on ids that might still commit,
    after a jump in the id sequence) reaches the page, which reloads itself whole."""
    collect()
    page.add_init_script(RECORD_SSE)
    log_in(page, web, *server_user("vera", "viewer"))
    _wait_until_streaming(page)
    page.evaluate("window.sameDocument = true")

    top = Change.objects.order_by("-id").first().pk
    Change.objects.create(id=top + 5000, kind=ChangeKind.FLEET, fields=["run"])
    page.wait_for_function("() => window.sameDocument === undefined", timeout=15000)
    _wait_until_streaming(page)  # the reloaded page streams again
    assert page.url == f"{web}/"


def test_fifty_rows_changed_in_one_step_arrive_as_one_event_and_all_swap(
    web, page, fleet_workers, fleet_settings
):
    """The coalesced form in htmx's SSE extension: one `fragments` event whose data holds the
    out-of-band form of every changed row, and htmx swaps each into place by its id."""
    Worker.objects.bulk_create(
        Worker(name=f"extra-{n:02d}", region="us-east-1", instance_id=f"i-extra{n:04d}")
        for n in range(50 - len(fleet_workers))
    )
    page.add_init_script(RECORD_SSE)
    log_in(page, web, *server_user("vera", "viewer"))
    _wait_until_streaming(page)
    page.evaluate("window.sameDocument = true")
    shown = page.eval_on_selector_all("tr[id$=-row]", "rows => rows.map(r => r.id)")
    assert len(shown) == 50
    page.evaluate("document.querySelectorAll('tr[id$=-row]').forEach(r => r.dataset.old = 'yes')")
    page.evaluate("window.sseEvents = []; window.sseTypes = []")

    pks = [int(row_id.split("-")[1]) for row_id in shown]
    with transaction.atomic():  # one commit: one step of the feed
        for pk in pks:
            Worker.objects.filter(pk=pk).update(name=f"renamed-{pk}")
        record_changes([(pk, ChangeKind.UPDATED, ["name"]) for pk in pks])

    page.wait_for_function(
        "() => [...document.querySelectorAll('tr[id$=-row]')]"
        ".every(r => r.dataset.old === undefined && r.innerText.includes('renamed-'))",
        timeout=15000,
    )
    for pk in pks:
        assert f"renamed-{pk}" in page.inner_text(f"#worker-{pk}-row")
    assert page.evaluate("window.sseTypes") == ["fragments"]  # one event for the fifty rows
    assert sorted(page.evaluate("window.sseEvents")) == sorted(shown)
    assert page.evaluate("window.sameDocument") is True  # swapped in place, never reloaded
