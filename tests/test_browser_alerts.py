"""An admin adds an alert channel and sends a test in a real browser: the URL goes in a password
field, comes back masked, the test reaches a real receiver, and no page breaks the CSP."""

import pytest
from django.contrib.auth.models import User

from fleet.models import AlertChannel
from tests.browser_fixtures import log_in, server_user

pytestmark = pytest.mark.browser


def test_an_admin_adds_a_channel_and_sends_a_test(web, page, receiver):
    username, password = server_user("ada", "admin")
    User.objects.filter(username=username).update(is_staff=True)
    log_in(page, web, username, password)

    page.goto(f"{web}/admin/fleet/alertchannel/add/")
    page.fill("#id_name", "ops")
    assert page.get_attribute("#id_url", "type") == "password"
    page.fill("#id_url", receiver.url("secret-Tok3n"))
    page.check("input[name=kinds][value=worker_down]")
    page.click("input[name=_continue]")
    page.wait_for_selector("text=was added successfully")
    html = page.content()
    assert "json://•••" in html and "Tok3n" not in html
    assert page.input_value("#id_url") == ""

    page.click("form.send-test button")
    page.wait_for_selector("text=Test sent to ops.")
    assert [r["title"] for r in receiver.received] == ["CML Fleet: test"]
    assert receiver.received[0]["path"] == "/secret-Tok3n"
    assert AlertChannel.objects.get().kinds == ["worker_down"]

    page.goto(f"{web}/admin/fleet/alertchannel/")
    assert "json://•••" in page.content()
