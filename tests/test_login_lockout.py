"""Login attempts are limited (django-axes) on the site's login page and the admin's, per user
name and client address, with a clear message and an admin page to unlock."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User

from tests.browser_fixtures import server_user
from tests.conftest import _user

SITE = "/accounts/login/"
ADMIN = "/admin/login/"
LOCKED = "Too many failed logins for this user from your address"


@pytest.fixture
def staff(db) -> User:
    return _user("sam", "admin", is_staff=True)


def _log_in(client, page: str, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(page, {"username": username, "password": password}, REMOTE_ADDR=address)


def _fail(client, page: str, username: str, times: int, address: str = "10.0.0.1"):
    return [_log_in(client, page, username, "wrong", address) for _ in range(times)]


def _logged_in(client) -> bool:
    return client.get("/").status_code == 200


@pytest.mark.parametrize("page", [SITE, ADMIN])
def test_five_bad_passwords_lock_even_the_right_one_out(client, staff, page, settings):
    assert settings.LOGIN_FAILURE_LIMIT == 5 and settings.LOGIN_COOLOFF_MINUTES == 15
    *first, fifth = _fail(client, page, "sam", 5)
    assert all(r.status_code == 200 and LOCKED not in r.content.decode() for r in first)
    assert fifth.status_code == 429
    response = _log_in(client, page, "sam", "pw-sam")
    assert response.status_code == 429
    html = response.content.decode()
    assert LOCKED in html and "locked for 15 minutes" in html
    assert 'name="password"' in html  # the login page itself, not a bare error
    assert not _logged_in(client)


def test_the_admin_login_shows_the_lockout_in_the_admin_page(client, staff):
    _fail(client, ADMIN, "sam", 5)
    html = _log_in(client, ADMIN, "sam", "pw-sam").content.decode()
    assert 'id="login-form"' in html and 'class="errornote"' in html and LOCKED in html


def test_the_lockout_is_per_user_and_address(client, staff, viewer):
    _fail(client, SITE, "sam", 5)
    assert _log_in(client, SITE, "sam", "pw-sam", address="10.0.0.2").status_code == 302
    client.logout()
    assert _log_in(client, SITE, "vera", "pw-vera").status_code == 302  # another user, same address


def test_a_success_before_the_limit_starts_the_count_again(client, staff):
    _fail(client, SITE, "sam", 4)
    assert _log_in(client, SITE, "sam", "pw-sam").status_code == 302
    client.logout()
    _fail(client, SITE, "sam", 4)
    assert _log_in(client, SITE, "sam", "pw-sam").status_code == 302


def test_the_lock_ends_after_the_cool_off(client, staff):
    _fail(client, SITE, "sam", 5)
    attempts = AccessAttempt.objects.filter(username="sam")
    attempts.update(attempt_time=attempts.get().attempt_time - timedelta(minutes=14))
    assert _log_in(client, SITE, "sam", "pw-sam").status_code == 429
    attempts.update(attempt_time=attempts.get().attempt_time - timedelta(minutes=16))
    assert _log_in(client, SITE, "sam", "pw-sam").status_code == 302


def test_the_admin_role_sees_the_attempts_and_unlocks(client, staff, admin_user):
    _fail(client, SITE, "sam", 5)
    attempt = AccessAttempt.objects.get(username="sam")
    client.force_login(admin_user)
    listing = client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "10.0.0.1" in listing.content.decode()
    assert client.get("/admin/axes/accesslog/").status_code == 200
    delete = f"/admin/axes/accessattempt/{attempt.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 302
    client.logout()
    assert _log_in(client, SITE, "sam", "pw-sam").status_code == 302


@pytest.mark.browser
def test_a_locked_out_browser_sees_the_message_on_the_login_page(web, page):
    """Through daphne (django-axes' asynchronous path) and under the page's CSP."""
    username, password = server_user("lena", "viewer")
    page.goto(f"{web}/accounts/login/")
    for attempt in [*["wrong"] * 5, password]:
        page.fill("#id_username", username)
        page.fill("#id_password", attempt)
        page.click("button[type=submit]")
        page.wait_for_load_state()
    assert LOCKED in page.locator("[role=alert]").inner_text()
    assert page.url == f"{web}/accounts/login/"
