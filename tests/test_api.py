"""The JSON API: auth (token, session, CSRF), permissions, the worker list's filters, errors
(every 4xx is {"error", "message"}) and the rate limit."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from fleet.api import ratelimit
from fleet.api.errors import ApiError
from fleet.api.main import api
from fleet.models import ActionEntry, ApiToken, CollectionRun, Lab, Worker
from fleet.models.tokens import digest
from fleet.web.worker_list import filtered_workers, parse_list_state
from tests.api_fixtures import TokenClient, token_for


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "message"} and body["message"], body
    if code:
        assert body["error"] == code
    return body


@pytest.fixture
def fleet_rows(db):
    """Twelve workers across regions and states."""
    rows = []
    for i in range(12):
        rows.append(
            Worker(
                name=f"w{i:02d}",
                region=["us-east-1", "eu-west-1"][i % 2],
                instance_id=f"i-{i:017x}",
                status=["running", "stopped", "terminated"][i % 3],
                service_status="available" if i % 4 else "unavailable",
                cpu_percent=float(i * 7 % 100),
            )
        )
    return Worker.objects.bulk_create(rows)


# --- auth --------------------------------------------------------------------------------------


def test_no_credentials_is_401_in_json(db):
    body = assert_error(Client().get("/api/v1/workers"), 401, "unauthorized")
    assert "Bearer" in body["message"]


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer ", "Bearer cfm_" + "x" * 43])
def test_a_wrong_token_is_401(viewer, header):
    response = Client().get("/api/v1/workers", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"] in {"invalid_token", "unauthorized"}


def test_a_token_works_and_records_its_use(viewer):
    token = token_for(viewer)
    row = ApiToken.objects.get()
    assert row.last_used_at is None
    assert TokenClient(token).get("/api/v1/workers").status_code == 200
    assert ApiToken.objects.get().last_used_at is not None
    # Stored hashed: the token itself is nowhere in the table.
    assert row.digest == digest(token) and token not in (row.digest, row.hint, row.name)


def test_expired_revoked_and_inactive_tokens_are_refused(viewer):
    expired = token_for(viewer, expires_at=timezone.now() - timedelta(seconds=1))
    assert_error(TokenClient(expired).get("/api/v1/workers"), 401, "invalid_token")
    revoked = token_for(viewer)
    ApiToken.objects.filter(digest=digest(revoked)).delete()
    assert_error(TokenClient(revoked).get("/api/v1/workers"), 401, "invalid_token")
    live = token_for(viewer, expires_at=timezone.now() + timedelta(days=1))
    assert TokenClient(live).get("/api/v1/workers").status_code == 200
    viewer.is_active = False
    viewer.save()
    assert_error(TokenClient(live).get("/api/v1/workers"), 401, "invalid_token")


def test_the_session_works_for_reads(client, viewer, fleet_rows):
    client.force_login(viewer)
    assert client.get("/api/v1/workers").json()["count"] == 8


def test_session_writes_need_csrf_but_token_writes_do_not(viewer, operator, worker):
    session = Client(enforce_csrf_checks=True)
    session.force_login(viewer)
    assert_error(session.post(f"/api/v1/workers/{worker.pk}/start"), 403, "csrf_failed")
    session.get("/api/v1/workers")  # any page sets no cookie: get one from a page
    session.get("/")
    csrf = session.cookies["csrftoken"].value
    answer = session.post(f"/api/v1/workers/{worker.pk}/start", headers={"X-CSRFToken": csrf})
    assert_error(answer, 403, "forbidden")  # past CSRF; a viewer may not start
    assert not ActionEntry.objects.exists()


# --- permissions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/workers", "/api/v1/labs", "/api/v1/runs", "/api/v1/audit"]
)
def test_a_user_without_a_role_may_read_nothing(outsider, path):
    body = assert_error(TokenClient(token_for(outsider)).get(path), 403, "forbidden")
    assert "fleet.view_" in body["message"]


@pytest.mark.parametrize("verb", ["start", "stop", "refresh"])
def test_a_viewer_may_not_act(api_as, worker, verb):
    assert_error(api_as("viewer").post(f"/api/v1/workers/{worker.pk}/{verb}"), 403, "forbidden")
    assert not ActionEntry.objects.exists()


@pytest.mark.parametrize(("verb", "role"), [("start", "viewer"), ("delete", "operator")])
def test_lab_actions_need_their_permission(api_as, worker, verb, role):
    Lab.objects.create(worker=worker, lab_id="lab-1", title="t")
    response = api_as(role).post(f"/api/v1/workers/{worker.pk}/labs/lab-1/{verb}")
    assert_error(response, 403, "forbidden")
    assert not ActionEntry.objects.exists()


# --- resources and filters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"region": "eu-west-1"},
        {"status": "stopped"},
        {"service": "unavailable"},
        {"terminated": "1", "sort": "-cpu"},
        {"q": "w0", "sort": "region"},
        {"trouble": "1"},
    ],
)
def test_the_worker_list_matches_the_page(api_as, fleet_rows, query):
    body = api_as("viewer").get("/api/v1/workers", query).json()
    expected = filtered_workers(parse_list_state(query, settings.AWS_REGIONS))
    assert [row["id"] for row in body["results"]] == [w.pk for w in expected]
    assert body["count"] == expected.count()


def test_the_worker_list_pages(api_as, fleet_rows):
    client = api_as("viewer")
    first = client.get("/api/v1/workers", {"terminated": "1", "per_page": 5}).json()
    third = client.get("/api/v1/workers", {"terminated": "1", "per_page": 5, "page": 3}).json()
    assert (first["count"], first["pages"], len(first["results"])) == (12, 3, 5)
    assert len(third["results"]) == 2 and third["page"] == 3
    assert_error(client.get("/api/v1/workers", {"page": 4, "per_page": 5}), 400, "invalid")
    assert_error(client.get("/api/v1/workers", {"page": "x"}), 400, "invalid")
    assert_error(client.get("/api/v1/workers", {"per_page": 1000}), 400, "invalid")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"region": "mars-1"}, "region 'mars-1'"),
        ({"status": "flying"}, "status 'flying'"),
        ({"sort": "shoe_size"}, "sort 'shoe_size'"),
    ],
)
def test_bad_filters_are_400_naming_them(api_as, fleet_rows, query, named):
    body = assert_error(api_as("viewer").get("/api/v1/workers", query), 400, "invalid")
    assert named in body["message"]


def test_worker_detail_has_its_labs(api_as, worker):
    Lab.objects.create(worker=worker, lab_id="lab-1", title="OSPF", state="STARTED")
    body = api_as("viewer").get(f"/api/v1/workers/{worker.pk}").json()
    assert body["instance_id"] == worker.instance_id
    assert [lab["lab_id"] for lab in body["labs"]] == ["lab-1"]
    lab = api_as("viewer").get(f"/api/v1/workers/{worker.pk}/labs/lab-1").json()
    assert lab["title"] == "OSPF"


def test_labs_filter_by_worker_and_state(api_as, worker, fleet_rows):
    other = fleet_rows[0]
    Lab.objects.create(worker=worker, lab_id="a", state="STARTED")
    Lab.objects.create(worker=worker, lab_id="b", state="STOPPED")
    Lab.objects.create(worker=other, lab_id="c", state="STARTED")
    client = api_as("viewer")
    assert client.get("/api/v1/labs").json()["count"] == 3
    by_worker = client.get("/api/v1/labs", {"worker": worker.pk}).json()["results"]
    assert {lab["lab_id"] for lab in by_worker} == {"a", "b"}
    started = client.get("/api/v1/labs", {"state": "STARTED"}).json()["results"]
    assert {lab["lab_id"] for lab in started} == {"a", "c"}
    assert_error(client.get("/api/v1/labs", {"state": "DANCING"}), 400, "invalid")


def test_runs_list_filter_and_detail(api_as, db):
    now = timezone.now()
    done = CollectionRun.objects.create(
        kind="full", status="succeeded", finished_at=now, errors={"7": "CML down"}
    )
    CollectionRun.objects.create(kind="metrics", status="failed", finished_at=now)
    client = api_as("viewer")
    assert client.get("/api/v1/runs").json()["count"] == 2
    full = client.get("/api/v1/runs", {"kind": "full"}).json()["results"]
    assert [run["id"] for run in full] == [done.pk]
    failed = client.get("/api/v1/runs", {"status": "failed"}).json()["results"]
    assert [run["kind"] for run in failed] == ["metrics"]
    assert client.get(f"/api/v1/runs/{done.pk}").json()["errors"] == {"7": "CML down"}
    assert_error(client.get("/api/v1/runs", {"kind": "weekly"}), 400, "invalid")


def test_audit_list_filters(api_as, worker, operator):
    for action, outcome in [("start_worker", "failed"), ("stop_worker", "succeeded")]:
        ActionEntry.objects.create(
            user=operator, username="otto", action=action, worker=worker, outcome=outcome
        )
    ActionEntry.objects.create(username="system", action="refresh_worker", outcome="noop")
    client = api_as("viewer")
    assert client.get("/api/v1/audit").json()["count"] == 3
    assert client.get("/api/v1/audit", {"user": "otto"}).json()["count"] == 2
    assert client.get("/api/v1/audit", {"worker": worker.pk}).json()["count"] == 2
    stops = client.get("/api/v1/audit", {"action": "stop_worker"}).json()["results"]
    assert [entry["outcome"] for entry in stops] == ["succeeded"]
    assert client.get("/api/v1/audit", {"outcome": "noop"}).json()["count"] == 1
    assert_error(client.get("/api/v1/audit", {"action": "fly"}), 400, "invalid")


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/workers/999999",
        "/api/v1/runs/999999",
        "/api/v1/audit/999999",
        "/api/v1/workers/999999/labs/nope",
        "/api/v1/nothing-here",
    ],
)
def test_unknown_things_are_404_in_json(api_as, db, path):
    assert_error(api_as("viewer").get(path), 404, "not_found")


def test_an_action_on_an_unknown_worker_is_404(api_as, db):
    assert_error(api_as("operator").post("/api/v1/workers/999999/start"), 404, "not_found")
    assert_error(api_as("operator").post("/api/v1/workers/999999/labs/x/stop"), 404, "not_found")


def test_a_wrong_method_is_405_in_json(api_as, worker):
    response = api_as("operator").get(f"/api/v1/workers/{worker.pk}/start")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


# --- rate limit --------------------------------------------------------------------------------


def test_the_rate_limit_is_per_token(settings, viewer, operator):
    settings.API_RATE_LIMIT = 3
    settings.API_RATE_WINDOW_SECONDS = 3600
    busy, calm = TokenClient(token_for(viewer)), TokenClient(token_for(operator))
    for _ in range(3):
        assert busy.get("/api/v1/runs").status_code == 200
    refused = busy.get("/api/v1/runs")
    body = assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused["Retry-After"]) <= 3600
    assert "3 calls" in body["message"]
    assert calm.get("/api/v1/runs").status_code == 200  # another token is not affected


def test_the_window_resets(settings, db):
    settings.API_RATE_LIMIT = 2
    settings.API_RATE_WINDOW_SECONDS = 60
    start = 1_800_000_000.0  # a window boundary (a multiple of 60)
    ratelimit.check(1, now=start + 10)
    ratelimit.check(1, now=start + 20)
    with pytest.raises(ApiError) as refused:
        ratelimit.check(1, now=start + 30)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "30"
    ratelimit.check(1, now=start + 61)  # the next window


# --- docs --------------------------------------------------------------------------------------


def test_docs_and_schema_need_a_login(client, viewer):
    assert client.get("/api/docs").status_code == 302
    client.force_login(viewer)
    assert client.get("/api/docs").status_code == 200
    schema = client.get("/api/openapi.json").json()
    assert "/api/v1/workers/{worker_id}/start" in schema["paths"]


# --- every endpoint ----------------------------------------------------------------------------


def every_endpoint(worker: Worker) -> list[tuple[str, str]]:
    """(method, path) of every operation in the API's own schema, ids filled with real ones."""
    Lab.objects.create(worker=worker, lab_id="lab-1", title="t")
    run = CollectionRun.objects.create()
    entry = ActionEntry.objects.create(username="x", action="stop_worker", worker=worker)
    ids = {
        "{worker_id}": str(worker.pk),
        "{lab_id}": "lab-1",
        "{run_id}": str(run.pk),
        "{entry_id}": str(entry.pk),
    }
    found = []
    for path, operations in api.get_openapi_schema()["paths"].items():
        for name, value in ids.items():
            path = path.replace(name, value)
        found += [(method.upper(), path) for method in operations]
    assert len(found) == 16
    return found


def test_every_endpoint_needs_credentials(worker):
    client = Client()
    for method, path in every_endpoint(worker):
        response = client.generic(method, path)
        assert_error(response, 401, "unauthorized")


def test_every_endpoint_refuses_a_user_without_a_role(outsider, worker):
    client = TokenClient(token_for(outsider))
    for method, path in every_endpoint(worker):
        response = client.get(path) if method == "GET" else client.post(path)
        assert_error(response, 403, "forbidden")
    assert ActionEntry.objects.count() == 1  # the one made above: no action was recorded
