"""Helpers for the API tests: a token for a user, and a client that sends it."""

import pytest
from django.test import Client

from fleet.models import ApiToken


def token_for(user, **options) -> str:
    return ApiToken.objects.issue(user, "tests", **options)[1]


class TokenClient:
    """Django's test client with `Authorization: Bearer <token>` on every call (and CSRF
    enforced, as for a real client: a token needs no CSRF token)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.client = Client(enforce_csrf_checks=True)

    def _headers(self, headers):
        return {"Authorization": f"Bearer {self.token}", **(headers or {})}

    def get(self, path, data=None, headers=None):
        return self.client.get(path, data, headers=self._headers(headers))

    def post(self, path, data=None, headers=None):
        return self.client.post(
            path, data or {}, content_type="application/json", headers=self._headers(headers)
        )


@pytest.fixture
def api_as(request):
    """`api_as("operator")`: a TokenClient for a new token of that role fixture's user."""

    def make(role: str) -> TokenClient:
        return TokenClient(token_for(request.getfixturevalue(role)))

    return make
