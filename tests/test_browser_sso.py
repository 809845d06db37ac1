"""Single sign-on end to end in Chromium against a real OpenID provider (Node's
oidc-provider) on loopback: first login creates the user with the role its groups map to;
logging out ends both sessions; a role removed at the provider is removed here at the next
login, which is refused; a changed role follows."""

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.browser


def sign_on(page, base_url: str, login: str) -> None:
    """From our login page through the provider's sign-in form and back."""
    page.goto(f"{base_url}/accounts/login/")
    page.click("#sso")
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any-password")
    page.click("button[type=submit]")


def roles(login: str) -> set[str]:
    return set(User.objects.get(username=login).groups.values_list("name", flat=True))


def test_single_sign_on_roles_and_logout(sso, page):
    base_url, provider = sso
    page.route("**/fonts.googleapis.com/**", lambda route: route.abort())  # provider's page CSS
    provider.set_account("alice", ["fleet-operators", "unrelated-group"])

    # First login: the user is created, with the operator role from the group claim.
    sign_on(page, base_url, "alice")
    page.wait_for_url(f"{base_url}/")
    assert "Log out alice" in page.inner_text("header")
    assert roles("alice") == {"operator"}
    alice = User.objects.get(username="alice")
    assert alice.email == "alice@example.com" and not alice.has_usable_password()
    assert "stop_worker" in page.evaluate("() => document.body.dataset.can")

    # Logout ends our session and, through end_session, the provider's.
    page.click("header button:has-text('Log out')")
    page.wait_for_selector("button[name=logout]")  # the provider asks to confirm
    page.click("button[name=logout]")
    page.wait_for_url(f"{base_url}/accounts/login/")
    page.goto(f"{base_url}/")
    assert page.url.startswith(f"{base_url}/accounts/login/")

    # The role is taken away at the provider: the next login is refused and the role goes.
    provider.set_account("alice", ["unrelated-group"])
    sign_on(page, base_url, "alice")  # the provider asks again: its session ended too
    page.wait_for_url(f"{base_url}/accounts/login/?sso=failed")
    assert "has no role" in page.inner_text("main")
    assert roles("alice") == set()
    page.goto(f"{base_url}/")
    assert page.url.startswith(f"{base_url}/accounts/login/")

    # A viewer group at the provider: viewer here, operator no longer.
    provider.set_account("alice", ["fleet-viewers"])
    page.goto(f"{base_url}/accounts/login/")
    page.click("#sso")  # the provider's session is still on: no form this time
    page.wait_for_url(f"{base_url}/")
    assert roles("alice") == {"viewer"}
    assert "stop_worker" not in (page.evaluate("() => document.body.dataset.can") or "")
