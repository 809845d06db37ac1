"""Single sign-on's role mapping (fleet/sso.py) and its settings; the login itself runs end
to end against a real provider in tests/test_browser_sso.py."""

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import SuspiciousOperation
from django.test import RequestFactory

from fleet.sso import NO_ROLE, RoleMappingBackend, provider_logout_url, roles_of, set_roles
from tests.oidc_fixtures import ROLE_MAP
from tests.test_settings import PRODUCTION, _manage

OP = "http://op.example"


@pytest.fixture
def oidc(settings):
    settings.OIDC_RP_CLIENT_ID = "cml-fleet"
    settings.OIDC_RP_CLIENT_SECRET = "secret"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{OP}/auth"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{OP}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{OP}/me"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{OP}/jwks"
    settings.OIDC_OP_LOGOUT_ENDPOINT = f"{OP}/session/end"
    settings.OIDC_ROLE_CLAIM = "groups"
    settings.OIDC_ROLE_MAP = dict(item.split("=") for item in ROLE_MAP.split(","))
    return settings


@pytest.fixture
def backend(oidc, db):
    backend = RoleMappingBackend()
    backend.request = RequestFactory().get("/oidc/callback/")
    backend.request.session = SessionStore()
    return backend


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        (["fleet-viewers", "fleet-admins"], {"viewer", "admin"}),
        ("fleet-operators", {"operator"}),
        (["something-else"], set()),
        ([1, None, {"x": 1}], set()),
        ({"fleet-viewers": True}, set()),
        (None, set()),
    ],
)
def test_the_role_claim_maps_to_roles(oidc, claim, expected):
    assert roles_of({"groups": claim}) == expected


def test_set_roles_leaves_other_groups(db):
    user = User.objects.create(username="u")
    other = Group.objects.create(name="coffee club")
    user.groups.add(other, Group.objects.get(name="admin"))
    set_roles(user, {"viewer"})
    assert set(user.groups.values_list("name", flat=True)) == {"viewer", "coffee club"}


def test_first_login_creates_the_user_with_its_role(backend):
    claims = {
        "sub": "s-1",
        "preferred_username": "bob",
        "email": "b@x",
        "groups": ["fleet-viewers"],
    }
    assert backend.verify_claims(claims)
    assert not backend.filter_users_by_claims(claims).exists()
    user = backend.create_user(claims)
    assert (user.username, user.email, user.has_usable_password()) == ("bob", "b@x", False)
    assert user.has_perm("fleet.view_worker") and not user.has_perm("fleet.stop_worker")


def test_roles_follow_the_claim_at_every_login(backend):
    user = User.objects.create(username="bob")
    user.groups.add(Group.objects.get(name="viewer"))
    backend.update_user(user, {"preferred_username": "bob", "groups": ["fleet-operators"]})
    user = User.objects.get(pk=user.pk)  # permissions are cached per instance
    assert set(user.groups.values_list("name", flat=True)) == {"operator"}
    assert user.has_perm("fleet.stop_worker")


def test_a_claim_with_no_role_removes_the_roles_and_refuses_the_login(backend):
    user = User.objects.create(username="bob")
    user.groups.add(Group.objects.get(name="admin"))
    with pytest.raises(SuspiciousOperation):
        backend.update_user(user, {"preferred_username": "bob", "groups": []})
    assert not user.groups.exists()
    assert backend.request.session["sso_refusal"] == NO_ROLE


def test_a_claim_without_a_user_name_is_refused(backend):
    assert not backend.verify_claims({"groups": ["fleet-viewers"]})
    assert backend.verify_claims({"sub": "only-a-subject"})  # sub is the fallback


def test_logout_goes_to_the_provider_only_for_a_signed_on_session(oidc, db):
    request = RequestFactory().post("/oidc/logout/")
    request.session = SessionStore()
    assert provider_logout_url(request) == "http://testserver/accounts/login/"
    request.session["oidc_id_token"] = "the.id.token"
    url = provider_logout_url(request)
    assert url.startswith(f"{OP}/session/end?id_token_hint=the.id.token")
    assert "post_logout_redirect_uri=http%3A%2F%2Ftestserver%2Faccounts%2Flogin%2F" in url


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OIDC_RP_CLIENT_ID": "x"}, "OIDC_RP_CLIENT_SECRET must be set"),
        (
            {
                "OIDC_RP_CLIENT_ID": "x",
                "OIDC_RP_CLIENT_SECRET": "s",
                "OIDC_OP_AUTHORIZATION_ENDPOINT": "a",
                "OIDC_OP_TOKEN_ENDPOINT": "t",
                "OIDC_OP_USER_ENDPOINT": "u",
                "OIDC_OP_JWKS_ENDPOINT": "j",
                "OIDC_ROLE_MAP": "ops=root",
            },
            "the role must be viewer, operator or admin",
        ),
    ],
)
def test_bad_oidc_settings_stop_start_up(env, message):
    result = _manage("check", **PRODUCTION, **env)
    assert result.returncode != 0 and message in result.stderr


def test_without_oidc_there_is_no_sign_on(client, db):
    assert client.get("/oidc/authenticate/").status_code == 404
    assert "single sign-on" not in client.get("/accounts/login/").content.decode()


def test_claims_of_the_wrong_type_or_with_nul_are_cleaned(backend):
    claims = {"preferred_username": "b\x00ob", "email": ["not", "text"], "groups": "fleet-viewers"}
    user = backend.create_user(claims)
    assert (user.username, user.email) == ("bob", "")
    assert not backend.verify_claims({"preferred_username": 42})
