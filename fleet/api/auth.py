"""Who calls the API: a personal API token (`Authorization: Bearer …`, rate limited, no CSRF),
or the browser's session (unsafe methods need the CSRF token, as the pages do)."""

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth

from fleet.api import ratelimit
from fleet.api.errors import ApiError
from fleet.models import ApiToken
from fleet.models.tokens import digest


class BearerToken(HttpBearer):
    """A personal API token. A header with a wrong, revoked or expired token is refused
    outright (401), never passed on to the session."""

    def authenticate(self, request: HttpRequest, token: str):
        token = token.strip()
        row = (
            ApiToken.objects.usable().select_related("user").filter(digest=digest(token)).first()
            if token
            else None
        )
        if row is None:
            raise ApiError(401, "The API token is unknown, revoked or expired.", "invalid_token")
        ratelimit.check(row.pk)
        row.touch()
        request.user = row.user
        request.api_token = row
        return row.user


class Session(SessionAuth):
    """The signed-in browser session; CSRF is checked on unsafe methods."""

    def __call__(self, request: HttpRequest):
        if not request.user.is_authenticated:  # no session: 401, not a CSRF complaint
            return None
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, key):
        user = request.user
        return user if user.is_authenticated and user.is_active else None


AUTH = [BearerToken(), Session(csrf=True)]


def need(request: HttpRequest, permission: str) -> None:
    """Refuse (403) a caller without this fleet permission."""
    if not request.auth.has_perm(f"fleet.{permission}"):
        raise ApiError(403, f"You need the permission fleet.{permission} for this.")
