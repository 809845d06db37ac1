"""With JavaScript off every page still reads and works: plain links, forms and redirects."""

import pytest

from fleet.models import Worker
from tests.browser_fixtures import log_in, server_user

pytestmark = pytest.mark.browser


@pytest.fixture
def plain_page(chromium):
    context = chromium.new_context(
        java_script_enabled=False, viewport={"width": 390, "height": 844}
    )
    yield context.new_page()
    context.close()


def test_filters_paging_and_refresh_work_without_javascript(web, plain_page, fleet_workers):
    Worker.objects.bulk_create(
        Worker(name=f"bulk-{n:03d}", region="us-east-1", instance_id=f"i-{n:08x}")
        for n in range(60)
    )
    log_in(plain_page, web, *server_user("olga", "operator"))
    assert plain_page.locator("tr[id$=-row]").count() == 50

    plain_page.click("a[rel=next]")
    assert "51–66 of 66" in plain_page.locator(".pagination span").inner_text()

    plain_page.fill("#search", "cml-worker")
    plain_page.select_option("#f-region", "eu-west-1")
    plain_page.click("form.filters button[type=submit]")
    assert "region=eu-west-1" in plain_page.url
    assert plain_page.locator("tr[id$=-row]").count() == 3

    worker = Worker.objects.filter(region="eu-west-1", name__startswith="cml-worker").first()
    plain_page.locator(f"#worker-{worker.pk}-row button:has-text('Refresh')").click()
    assert "region=eu-west-1" in plain_page.url  # back where the form was
    assert "Refreshed" in plain_page.locator(".messages").inner_text()

    plain_page.click(f"#worker-{worker.pk}-row a")
    assert plain_page.locator(f"#worker-{worker.pk}-cml").is_visible()
    assert plain_page.locator(f"[id^=worker-{worker.pk}-history-]").is_visible()


def test_the_phone_layout_keeps_the_table_inside_its_scroller(web, plain_page, fleet_workers):
    log_in(plain_page, web, *server_user("vera", "viewer"))
    page_width = plain_page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= 390  # only the table scrolls sideways, not the page
