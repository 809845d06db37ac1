"""Single sign-on with OpenID Connect (mozilla-django-oidc): users are matched by the
OIDC_USERNAME_CLAIM, created on their first login, and their roles (the groups viewer,
operator and admin) follow OIDC_ROLE_CLAIM through OIDC_ROLE_MAP at every login. A login whose
claim maps to no role is refused, after the roles are taken away."""

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.shortcuts import resolve_url
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView

from fleet.roles import ROLES

log = logging.getLogger(__name__)

NO_ROLE = "Your single sign-on account has no role in CML Fleet Monitor; ask an administrator."


def roles_of(claims: dict) -> set[str]:
    """The roles the role claim grants (a list of values or one value); unknown values
    grant nothing."""
    value = claims.get(settings.OIDC_ROLE_CLAIM) or []
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return {
        settings.OIDC_ROLE_MAP[item]
        for item in values
        if isinstance(item, str) and item in settings.OIDC_ROLE_MAP
    }


def set_roles(user, roles: set[str]) -> None:
    """Give the user exactly these roles among the managed ones; other groups stay."""
    managed = Group.objects.filter(name__in=ROLES)
    user.groups.remove(*[group for group in managed if group.name not in roles])
    user.groups.add(*[group for group in managed if group.name in roles])


def _text(value, limit: int) -> str:
    """A claim as text for a column: strings only, without NUL characters, cut to fit."""
    return value.replace("\x00", "")[:limit] if isinstance(value, str) else ""


class RoleMappingBackend(OIDCAuthenticationBackend):
    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims, overlaid by the userinfo endpoint's (providers put groups in
        one or the other)."""
        return {**payload, **super().get_userinfo(access_token, id_token, payload)}

    def _username(self, claims: dict) -> str:
        return _text(claims.get(settings.OIDC_USERNAME_CLAIM) or claims.get("sub"), 150)

    def verify_claims(self, claims: dict) -> bool:
        return bool(self._username(claims))

    def filter_users_by_claims(self, claims: dict):
        return self.UserModel.objects.filter(username=self._username(claims))

    def create_user(self, claims: dict):
        user = self.UserModel(username=self._username(claims))
        user.set_unusable_password()
        return self._apply(user, claims)

    def update_user(self, user, claims: dict):
        return self._apply(user, claims)

    def _apply(self, user, claims: dict):
        roles = roles_of(claims)
        with transaction.atomic():
            user.email = _text(claims.get("email"), 254) or user.email
            user.first_name = _text(claims.get("given_name"), 150) or user.first_name
            user.last_name = _text(claims.get("family_name"), 150) or user.last_name
            user.save()
            set_roles(user, roles)
        log.info("single sign-on: %s with roles %s", user.username, sorted(roles) or "none")
        if not roles:
            self.request.session["sso_refusal"] = NO_ROLE
            raise SuspiciousOperation(NO_ROLE)  # the library logs it and refuses the login
        return user


class Callback(OIDCAuthenticationCallbackView):
    """The provider's redirect back; a refused login says why on the login page."""

    def login_failure(self):
        reason = self.request.session.pop("sso_refusal", "") or "It did not complete; try again."
        messages.error(self.request, f"Single sign-on failed. {reason}")
        return super().login_failure()


def provider_logout_url(request) -> str:
    """Where logging out leads: the provider's end_session_endpoint (ending the provider's
    session too) when it is known and this session signed on there, else the login page."""
    back = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
    id_token = request.session.get("oidc_id_token")
    if not (settings.OIDC_OP_LOGOUT_ENDPOINT and id_token):
        return back
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": back,
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{query}"
