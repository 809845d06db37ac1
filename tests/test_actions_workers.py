"""Worker start, stop, terminate and bulk: through the pages, against moto; EC2 refusals."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.core.exceptions import PermissionDenied
from django_q.models import OrmQ

from fleet.actions import ec2 as ec2_calls
from fleet.actions import workers as worker_actions
from fleet.models import ActionEntry, Change, Worker
from simulator.aws_faults import ec2_refuses
from tests.action_fixtures import of_state, run_queued

ANONYMOUS, VIEWER, OPERATOR, ADMIN = "anonymous", "viewer", "operator", "admin"


@pytest.fixture
def fast_polls(monkeypatch):
    monkeypatch.setattr(worker_actions, "POLL_SECONDS", 0.05)


def login(client, request, role):
    if role != ANONYMOUS:
        client.force_login(request.getfixturevalue({"admin": "admin_user"}.get(role, role)))


@pytest.mark.parametrize(
    ("path", "role", "status"),
    [
        ("stop", ANONYMOUS, 302),
        ("stop", VIEWER, 403),
        ("start", VIEWER, 403),
        ("terminate", OPERATOR, 403),
        ("terminate", VIEWER, 403),
    ],
)
def test_a_role_without_the_permission_is_refused(client, request, worker, path, role, status):
    login(client, request, role)
    assert client.post(f"/workers/{worker.pk}/{path}").status_code == status
    assert not ActionEntry.objects.exists()


@pytest.mark.parametrize("path", ["start", "stop", "terminate"])
def test_get_is_not_allowed(client, admin_user, worker, path):
    client.force_login(admin_user)
    assert client.get(f"/workers/{worker.pk}/{path}").status_code == 405


def test_the_action_function_checks_the_permission_too(viewer, worker):
    with pytest.raises(PermissionDenied):
        worker_actions.stop_worker(viewer, worker)


def test_stop_shows_stopping_at_once_then_the_task_settles_it(
    client, operator, collected, fast_polls, django_capture_on_commit_callbacks
):
    worker = of_state(collected, "running")
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/workers/{worker.pk}/stop", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert "stopping…" in html and f'id="worker-{worker.pk}-row"' in html
    entry = ActionEntry.objects.get()
    assert (entry.outcome, entry.username, entry.action) == ("pending", "otto", "stop_worker")
    worker.refresh_from_db()
    assert (worker.status, worker.pending_action) == ("stopping", "stop")
    change = Change.objects.filter(worker_id=worker.pk).latest("id")
    assert {"pending_action", "status", "actions"} <= set(change.fields)
    assert OrmQ.objects.get().func() == "fleet.actions.workers.settle"

    run_queued()
    worker.refresh_from_db()
    entry.refresh_from_db()
    assert (worker.status, worker.pending_action, worker.pending_since) == ("stopped", "", None)
    assert entry.outcome == "succeeded" and entry.finished_at is not None
    assert "is stopped" in entry.message


def test_start_of_a_stopped_worker_settles_running(operator, collected, fast_polls):
    worker = of_state(collected, "stopped")
    entry = worker_actions.start_worker(operator, worker)
    assert entry.outcome == "pending" and Worker.objects.get(pk=worker.pk).status == "pending"
    worker_actions.settle(entry.pk)
    worker.refresh_from_db()
    assert worker.status == "running" and not worker.pending_action
    assert worker.service_status == "available"  # collected once it settled


@contextmanager
def ec2_operations(region: str) -> Iterator[list[str]]:
    """The EC2 operations the actions' client of `region` makes while inside."""
    made: list[str] = []

    def note(model, **kwargs) -> None:
        made.append(model.name)

    client = ec2_calls.ec2(region)
    client.meta.events.register("before-call.ec2", note)
    try:
        yield made
    finally:
        client.meta.events.unregister("before-call.ec2", note)


@pytest.mark.parametrize(("path", "state"), [("stop", "stopped"), ("start", "running")])
def test_an_action_on_a_worker_already_there_says_so_and_calls_nothing(
    client, operator, collected, path, state
):
    worker = of_state(collected, state)
    client.force_login(operator)
    page = f"http://testserver/workers/{worker.pk}/"
    with ec2_operations(worker.region) as made:
        response = client.post(f"/workers/{worker.pk}/{path}", HTTP_REFERER=page)
    assert response.status_code == 302 and response["Location"] == page
    assert made == []  # EC2 is not asked at all
    entry = ActionEntry.objects.get()
    assert (entry.outcome, entry.message) == ("noop", f"{worker} is already {state}.")
    assert f"is already {state}" in client.get(page).content.decode()
    after = Worker.objects.get(pk=worker.pk)
    assert (after.status, after.pending_action) == (state, "")
    assert not OrmQ.objects.exists()


def test_a_second_stop_while_stopping_does_nothing(operator, collected):
    worker = of_state(collected, "running")
    worker_actions.stop_worker(operator, worker)
    again = worker_actions.stop_worker(operator, Worker.objects.get(pk=worker.pk))
    assert again.outcome == "noop" and "already stopping…" in again.message


# Each lifecycle action: its path, the state it acts from, its EC2 operation, who may.
LIFECYCLE = {
    "start": ("stopped", "StartInstances", OPERATOR),
    "stop": ("running", "StopInstances", OPERATOR),
    "terminate": ("running", "TerminateInstances", ADMIN),
}


def post_lifecycle(client, request, worker, path, **headers):
    login(client, request, LIFECYCLE[path][2])
    data = {"confirm": worker.name} if path == "terminate" else {}
    return client.post(f"/workers/{worker.pk}/{path}", data, **headers)


@pytest.mark.parametrize("path", LIFECYCLE)
@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("IncorrectInstanceState", "not in a state that allows this"),
        ("UnauthorizedOperation", "lacks the IAM permission ec2:{operation}"),
        ("RequestLimitExceeded", "throttling"),
        ("Throttling", "throttling"),
    ],
)
def test_an_ec2_refusal_is_a_clear_message_and_nothing_is_half_written(
    client, request, collected, path, code, words
):
    state, operation, _ = LIFECYCLE[path]
    words = words.format(operation=operation)
    worker = of_state(collected, state)
    changes_before = Change.objects.count()
    with ec2_refuses(ec2_calls.ec2(worker.region), operation, code, "AWS's own words"):
        response = post_lifecycle(client, request, worker, path, HTTP_HX_REQUEST="true")
    assert words in response.content.decode()
    entry = ActionEntry.objects.get()
    assert (
        entry.outcome == "failed" and words in entry.message and "AWS's own words" in entry.message
    )
    assert entry.finished_at is not None
    after = Worker.objects.get(pk=worker.pk)
    assert (after.status, after.pending_action, after.pending_since) == (state, "", None)
    # The only change-log row is the new audit entry's: no state of the worker was written.
    assert list(
        Change.objects.order_by("id").values_list("fields", flat=True)[changes_before:]
    ) == [["actions"]]
    assert not OrmQ.objects.exists()


@pytest.mark.parametrize("path", LIFECYCLE)
def test_aws_down_fails_the_action_without_changing_the_worker(
    client, request, collected, settings, path
):
    state = LIFECYCLE[path][0]
    worker = of_state(collected, state)
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    response = post_lifecycle(client, request, worker, path, HTTP_HX_REQUEST="true")
    assert "could not be reached" in response.content.decode()
    entry = ActionEntry.objects.get()
    assert entry.outcome == "failed" and "could not be reached" in entry.message
    after = Worker.objects.get(pk=worker.pk)
    assert (after.status, after.pending_action) == (state, "")
    assert not OrmQ.objects.exists()


def test_terminate_needs_the_name_typed(client, admin_user, collected, fast_polls):
    worker = of_state(collected, "stopped")
    client.force_login(admin_user)
    client.post(f"/workers/{worker.pk}/terminate", {"confirm": "wrong"})
    assert ActionEntry.objects.get().outcome == "failed"
    assert Worker.objects.get(pk=worker.pk).status == "stopped"
    client.post(f"/workers/{worker.pk}/terminate", {"confirm": worker.name})
    entry = ActionEntry.objects.latest("id")
    assert entry.outcome == "pending"
    worker_actions.settle(entry.pk)
    assert Worker.objects.get(pk=worker.pk).status == "terminated"
    again = worker_actions.terminate_worker(
        admin_user, Worker.objects.get(pk=worker.pk), worker.name
    )
    assert again.outcome == "noop"


def test_bulk_stop_answers_for_each_worker(client, operator, collected):
    up = [w for w in collected if w.status == "running"][:2]
    down = of_state(collected, "stopped")
    client.force_login(operator)
    pks = [w.pk for w in [*up, down]]
    response = client.post(
        "/workers/actions", {"action": "stop", "pks": pks}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert 'id="action-results"' in html
    for worker in [*up, down]:
        assert f'id="worker-{worker.pk}-row"' in html
    outcomes = dict(ActionEntry.objects.values_list("worker_id", "outcome"))
    assert outcomes == {up[0].pk: "pending", up[1].pk: "pending", down.pk: "noop"}


def test_bulk_needs_the_permission_of_its_action(client, viewer, worker):
    client.force_login(viewer)
    response = client.post("/workers/actions", {"action": "stop", "pks": [worker.pk]})
    assert response.status_code == 403
    assert client.get("/workers/actions").status_code == 405
    assert not ActionEntry.objects.exists()


def test_a_viewer_sees_no_action_buttons_an_operator_does(client, viewer, operator, collected):
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert 'data-can=""' in html and 'id="bulk-form"' not in html
    client.force_login(operator)
    html = client.get("/").content.decode()
    assert "stop_worker" in html.split('data-can="')[1].split('"')[0]
    assert 'id="bulk-form"' in html and "needs-stop_worker" in html
