"""The charts in a real browser: the window in the URL, live updates, no JavaScript, and the
colour contrast of the pages in the light and the dark scheme (axe-core)."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from fleet.models import Sample
from tests.browser_fixtures import log_in, server_user
from tests.fleet_fixtures import cml_of, running
from tests.test_browser_live import RECORD_SSE, collect

pytestmark = pytest.mark.browser

AXE = Path(__file__).resolve().parent / "node" / "node_modules" / "axe-core" / "axe.min.js"
CHART_POINTS = "#{section} svg.chart .hovers rect"


def _count(page, selector: str) -> int:
    return page.locator(selector).count()


def seed(worker, *minutes_ago):
    """Samples of the worker taken that many minutes ago (besides the cycles' own)."""
    now = timezone.now()
    Sample.objects.bulk_create(
        Sample(worker=worker, taken_at=now - timedelta(minutes=m), cpu_percent=10 + m)
        for m in minutes_ago
    )


def test_the_window_switch_keeps_the_window_in_the_url(web, page, fleet_workers, fleet_settings):
    collect()
    worker = running(fleet_settings, fleet_workers)[0]
    seed(worker, 20, 10)
    log_in(page, web, *server_user("vera", "viewer"))
    page.goto(f"{web}/workers/{worker.pk}/")
    # A fresh install: the hour, the smallest window holding every sample.
    section = page.locator(f"#worker-{worker.pk}-history-1h")
    assert "Monitoring, last hour" in section.inner_text()
    assert section.locator("svg.chart").count() == 5
    assert section.locator("a[aria-current]").inner_text() == "1h"
    assert section.locator("svg.chart").first.locator(".hovers rect").count() == 3

    section.locator("a", has_text="7d").click()
    page.wait_for_url(f"{web}/workers/{worker.pk}/?window=7d")
    week = page.locator(f"#worker-{worker.pk}-history-7d")
    assert "Monitoring, last 7 days" in week.inner_text()
    assert week.locator("a[aria-current]").inner_text() == "7d"
    # The page follows the charts of the window it shows.
    stream = page.locator("[sse-connect]").get_attribute("sse-connect")
    assert "history-7d" in stream and "history-1h" not in stream
    # A week's x ticks are days; its points average 84 minutes each: 3 samples, 1 or 2 points.
    cpu = week.locator("svg.chart").first
    assert cpu.locator(".ticks text").count() >= 6
    assert (
        "Mon" in cpu.locator(".ticks").inner_html() or "Sun" in cpu.locator(".ticks").inner_html()
    )
    assert "3 samples" in week.inner_text()
    assert cpu.locator(".hovers rect").count() in (1, 2)

    page.go_back()
    page.wait_for_url(f"{web}/workers/{worker.pk}/")
    assert page.locator(f"#worker-{worker.pk}-history-1h").is_visible()


def test_a_cycle_moves_the_worker_and_fleet_charts_live(web, page, fleet_workers, fleet_settings):
    collect()
    worker = running(fleet_settings, fleet_workers)[0]
    page.add_init_script(RECORD_SSE)
    log_in(page, web, *server_user("vera", "viewer"))
    page.wait_for_function("() => window.sseOpened >= 1")
    page.evaluate("window.sameDocument = true")
    assert "1 cycle," in page.locator("#fleet-chart").inner_text()
    assert page.title() == "CML Fleet"

    # A cycle adds samples (and puts one worker in trouble): the fleet chart and the title move.
    cml_of(fleet_settings, worker).http_500 = True
    collect()
    page.wait_for_function(
        "() => document.querySelector('#fleet-chart').innerText.includes('2 cycles,')"
    )
    page.wait_for_function("() => document.title === '1 down · CML Fleet'")
    assert page.evaluate("window.sameDocument") is True

    page.goto(f"{web}/workers/{worker.pk}/")
    page.wait_for_function("() => window.sseOpened >= 1")
    page.evaluate("window.sameDocument = true")
    section = f"#worker-{worker.pk}-history-1h"
    assert "2 samples" in page.locator(section).inner_text()
    cml_of(fleet_settings, worker).http_500 = False
    collect()
    page.wait_for_function(
        f"() => document.querySelector('{section}').innerText.includes('3 samples')"
    )
    assert page.evaluate("window.sameDocument") is True
    assert f"worker-{worker.pk}-history-1h" in page.evaluate("window.sseEvents")


@pytest.fixture
def plain_page(chromium):
    context = chromium.new_context(
        java_script_enabled=False, viewport={"width": 1280, "height": 900}
    )
    yield context.new_page()
    context.close()


def test_the_charts_read_without_javascript(web, plain_page, fleet_workers, fleet_settings):
    collect()
    worker = running(fleet_settings, fleet_workers)[0]
    seed(worker, 10)
    log_in(plain_page, web, *server_user("vera", "viewer"))
    fleet_cpu = plain_page.locator("#fleet-chart svg.chart").first
    assert fleet_cpu.get_attribute("aria-label").startswith(
        "Fleet CPU %, average of the workers reporting over the last hour: last "
    )
    plain_page.goto(f"{web}/workers/{worker.pk}/")
    cpu = plain_page.locator(f"#worker-{worker.pk}-history-1h figure").first
    assert cpu.locator("figcaption").inner_text().startswith("CPU %")
    assert "now" in cpu.locator("figcaption").inner_text()
    chart = cpu.locator("svg.chart")
    assert chart.is_visible() and chart.bounding_box()["width"] > 300
    assert chart.locator(".series path").count() == 1  # two samples 10 minutes apart, one line
    assert chart.locator(".marks .current text").count() == 1
    # hover values are SVG <title>s: the browser shows them without any script
    titles = chart.locator(".hovers rect title").all_text_contents()
    assert len(titles) == 2 and all(" · " in title and title.endswith("%") for title in titles)
    plain_page.click(f"#worker-{worker.pk}-history-1h a:has-text('24h')")
    assert plain_page.url.endswith("?window=24h")
    assert plain_page.locator(f"#worker-{worker.pk}-history-24h svg.chart").count() == 5


def _contrast_violations(page) -> list[str]:
    """axe-core's colour-contrast rule on the page as shown. Its source is evaluated over the
    DevTools protocol, which the page's Content-Security-Policy does not govern."""
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'rule', values: ['color-contrast']}})"
    )
    return [
        f"{node['target']}: {node['failureSummary']}"
        for violation in result["violations"]
        for node in violation["nodes"]
    ]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_passes_axes_contrast_check_in_both_schemes(
    web, chromium, fleet_workers, fleet_settings, scheme
):
    if not AXE.exists():  # `make test` installs it where npm is; CI must run the check
        message = f"{AXE} is missing: `make test` installs it (npm ci --prefix tests/node)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    collect()
    worker = running(fleet_settings, fleet_workers)[0]
    context = chromium.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    try:
        log_in(page, web, *server_user("adam", "admin"))
        assert page.evaluate("matchMedia('(prefers-color-scheme: dark)').matches") == (
            scheme == "dark"
        )
        found = {}
        for path in ("/", f"/workers/{worker.pk}/", "/runs/", "/audit/"):
            page.goto(web + path)
            found[path] = _contrast_violations(page)
        assert found == {path: [] for path in found}
        # ... and the check sees a failure when there is one: faint text on the page's card.
        page.evaluate(
            """() => {
                const faint = document.createElement("p");
                faint.id = "faint";
                faint.textContent = "hard to read";
                const dark = matchMedia("(prefers-color-scheme: dark)").matches;
                faint.style.color = dark ? "#20262e" : "#e8e8e8";
                document.querySelector("main").append(faint);
            }"""
        )
        assert any("#faint" in line for line in _contrast_violations(page))
    finally:
        context.close()


def test_relative_times_age_in_the_browser(web, page, fleet_workers):
    collect()
    page.clock.install()  # the page's clock, from now; moved on below
    log_in(page, web, *server_user("vera", "viewer"))
    polled = page.locator("tr[id$=-row] time[data-ago]").first
    assert polled.inner_text() == "<1 min ago"
    assert polled.get_attribute("datetime")  # the exact moment, machine-readable
    page.clock.fast_forward("07:00")
    page.wait_for_function(
        "() => document.querySelector('tr[id$=-row] time[data-ago]').textContent === '7 min ago'"
    )
    page.clock.fast_forward("02:00:00")
    page.wait_for_function(
        "() => document.querySelector('tr[id$=-row] time[data-ago]').textContent"
        " === '2 h 7 min ago'"
    )


@pytest.mark.parametrize("width", [1280, 390])
def test_tables_fit_their_cards(web, chromium, fleet_workers, fleet_settings, width):
    """At 1,280 px nothing scrolls; on a phone only a table scrolls, inside its own card."""
    collect()
    worker = running(fleet_settings, fleet_workers)[0]
    context = chromium.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        log_in(page, web, *server_user("olga", "operator"))
        for path in ("/", f"/workers/{worker.pk}/", "/runs/", "/audit/"):
            page.goto(web + path)
            assert page.evaluate("document.documentElement.scrollWidth") <= width, path
            overflowing = page.evaluate(
                """() => [...document.querySelectorAll('table')]
                    .filter((t) => t.closest('.table-wrap') === null
                        && t.getBoundingClientRect().right
                           > t.parentElement.getBoundingClientRect().right + 1)
                    .map((t) => t.className || t.parentElement.id)"""
            )
            assert overflowing == [], path
            if width == 1280:  # every table whole inside its card: no sideways scrolling
                scrolled = page.evaluate(
                    """() => [...document.querySelectorAll('.table-wrap')]
                        .filter((w) => w.scrollWidth > w.clientWidth + 1)
                        .map((w) => w.querySelector('table').className)"""
                )
                assert scrolled == [], path
    finally:
        context.close()
