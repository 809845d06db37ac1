"""Hostile input never makes a 500: NUL characters (PostgreSQL refuses them in text), very
long values, odd headers."""

import pytest
from django.test import Client

from fleet.models import ApiToken
from tests.api_fixtures import TokenClient, token_for


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/workers", {"q": "a\x00b"}),
        ("/api/v1/workers", {"q": "x" * 10_000}),
        ("/api/v1/audit", {"user": "a\x00b"}),
        ("/api/v1/audit", {"worker": "a\x00b"}),
        ("/api/v1/labs", {"worker": "1\x00"}),
        ("/api/v1/workers/1/labs/a%00b", {}),
    ],
)
def test_hostile_queries_are_answered(api_as, db, path, query):
    response = api_as("viewer").get(path, query)
    assert response.status_code in (200, 400, 404), response.content
    assert response["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"error", "message"} or response.status_code == 200


@pytest.mark.parametrize(
    "header", ["Bearer \x00", "Bearer " + "x" * 20_000, "Bearer  two  spaces", "Basic abc"]
)
def test_odd_authorization_headers_are_401(db, header):
    assert Client().get("/api/v1/workers", headers={"Authorization": header}).status_code == 401


def test_a_token_name_with_a_nul_is_refused(client, viewer):
    client.force_login(viewer)
    response = client.post("/profile/", {"name": "a\x00b", "expires_in_days": ""})
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_token_sent_twice_over_is_still_one_token(viewer):
    token = token_for(viewer)
    assert TokenClient(token).get("/api/v1/runs").status_code == 200
