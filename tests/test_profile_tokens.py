"""The profile page: create a token (shown once, stored hashed), use it, revoke it."""

import re

import pytest

from fleet.models import ApiToken
from tests.api_fixtures import TokenClient, token_for

TOKEN_RE = re.compile(r'<code id="new-token">(cfm_[A-Za-z0-9_-]+)</code>')


def test_create_use_and_revoke_a_token(client, viewer):
    client.force_login(viewer)
    page = client.post("/profile/", {"name": "grafana", "expires_in_days": "30"})
    token = TOKEN_RE.search(page.content.decode()).group(1)
    row = ApiToken.objects.get(user=viewer)
    assert row.name == "grafana" and row.expires_at is not None
    assert token not in row.digest and row.hint == token[:8]
    assert token not in client.get("/profile/").content.decode()  # shown once only
    assert TokenClient(token).get("/api/v1/workers").status_code == 200
    assert "grafana" in client.get("/profile/").content.decode()
    client.post(f"/profile/tokens/{row.pk}/revoke")
    assert not ApiToken.objects.exists()
    assert TokenClient(token).get("/api/v1/workers").status_code == 401


def test_a_token_without_expiry(client, viewer):
    client.force_login(viewer)
    client.post("/profile/", {"name": "ci", "expires_in_days": ""})
    assert ApiToken.objects.get().expires_at is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "expires_in_days": ""}, "1 to 100 printable"),
        ({"name": "x" * 101, "expires_in_days": ""}, "1 to 100 printable"),
        ({"name": "x", "expires_in_days": "9999"}, "expiry from the list"),
    ],
)
def test_bad_input_is_400(client, viewer, data, message):
    client.force_login(viewer)
    response = client.post("/profile/", data)
    assert response.status_code == 400 and message in response.content.decode()
    assert not ApiToken.objects.exists()


def test_one_may_not_revoke_anothers_token(client, viewer, operator):
    token_for(operator)
    client.force_login(viewer)
    assert client.post(f"/profile/tokens/{ApiToken.objects.get().pk}/revoke").status_code == 404
    assert ApiToken.objects.count() == 1


def test_the_profile_needs_a_login_and_revoke_needs_post(client, viewer):
    assert client.get("/profile/").status_code == 302
    client.force_login(viewer)
    token_for(viewer)
    assert client.get(f"/profile/tokens/{ApiToken.objects.get().pk}/revoke").status_code == 405


def test_an_admin_sees_and_revokes_tokens_in_the_admin(client, admin_user, viewer):
    token = token_for(viewer)
    client.force_login(admin_user)
    listing = client.get("/admin/fleet/apitoken/").content.decode()
    assert "tests" in listing and token not in listing
    row = ApiToken.objects.get()
    assert token not in client.get(f"/admin/fleet/apitoken/{row.pk}/change/").content.decode()
    assert client.get("/admin/fleet/apitoken/add/").status_code == 403
    client.post(f"/admin/fleet/apitoken/{row.pk}/delete/", {"post": "yes"})
    assert not ApiToken.objects.exists()
    assert TokenClient(token).get("/api/v1/workers").status_code == 401
