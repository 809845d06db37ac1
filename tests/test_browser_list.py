"""The worker list in a real browser: filters, paging and the Refresh button."""

import pytest

from fleet.models import Worker
from tests.browser_fixtures import log_in, server_user

pytestmark = pytest.mark.browser


@pytest.fixture
def operator_login(transactional_db):
    return server_user("olga", "operator")


def test_filter_search_and_page_through_the_list(web, page, operator_login, fleet_workers):
    Worker.objects.bulk_create(
        Worker(name=f"bulk-{n:03d}", region="us-east-1", instance_id=f"i-{n:08x}")
        for n in range(120)
    )
    log_in(page, web, *operator_login)
    assert page.locator("tr[id$=-row]").count() == 50
    page.click("a[rel=next]")
    page.wait_for_url("**page=2")
    assert page.locator(".pagination span").inner_text().startswith("51–100 of 126")

    page.fill("#search", "cml-worker")
    page.wait_for_url("**q=cml-worker**")
    page.wait_for_function("() => document.querySelectorAll('tr[id$=-row]').length === 6")
    page.select_option("#f-region", "eu-west-1")
    page.wait_for_url("**region=eu-west-1**")
    page.wait_for_function("() => document.querySelectorAll('tr[id$=-row]').length === 3")
    page.go_back()  # the state lives in the URL
    page.wait_for_function("() => document.querySelectorAll('tr[id$=-row]').length === 6")

    page.click("th a:has-text('CPU')")
    page.wait_for_url("**sort=cpu**")
    assert page.locator("th[aria-sort=ascending]").inner_text().startswith("CPU")


def test_a_worker_name_opens_its_page(web, page, operator_login, fleet_workers):
    log_in(page, web, *operator_login)
    worker = Worker.objects.get(instance_id=fleet_workers[0].instance_id)
    page.click(f"#worker-{worker.pk}-row td:nth-child(2) a")
    page.wait_for_url(f"{web}/workers/{worker.pk}/")
    assert page.locator("h1").inner_text() == worker.name


def test_slash_focuses_search(web, page, operator_login, fleet_workers):
    log_in(page, web, *operator_login)
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "search"


def test_the_refresh_button_swaps_the_fresh_row_in(web, page, operator_login, fleet_workers):
    log_in(page, web, *operator_login)
    worker = Worker.objects.get(instance_id=fleet_workers[0].instance_id)
    row = page.locator(f"#worker-{worker.pk}-row")
    assert "Unknown" in row.inner_text()
    row.locator("button:has-text('Refresh')").click()
    # The answer's toast says it is done (the live stream may swap the row in even sooner).
    page.wait_for_function("() => document.querySelector('#toast').innerText.includes('Refreshed')")
    assert "Running" in page.locator(f"#worker-{worker.pk}-row").inner_text()
