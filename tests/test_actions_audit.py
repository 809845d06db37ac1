"""The common audited path, for every action: the function itself checks the permission
(whatever calls it: a view, a command, a task), and the state an action changes, its audit
entry and its change-log row are written together or not at all."""

import pytest
from django.core.exceptions import PermissionDenied
from django_q.models import OrmQ

from fleet.actions import audit, importing, labs, licence, refresh, workers
from fleet.models import ActionEntry, Change, Lab, Worker
from tests.action_fixtures import of_state

TOKEN = "NzY4ZGQ0ZjMtc2VjcmV0LXRva2Vu"
TOPOLOGY = b"lab:\n  title: Refused\n  version: 0.3.0\nnodes: []\nlinks: []\n"


def _lab(up: Worker) -> Lab:
    return Lab.objects.filter(worker=up).first()


# Each action function, called as the pages would call it, on a worker where it would act.
ACTIONS = {
    "start_worker": lambda user, up, down: workers.start_worker(user, down),
    "stop_worker": lambda user, up, down: workers.stop_worker(user, up),
    "terminate_worker": lambda user, up, down: workers.terminate_worker(user, up, up.name),
    "bulk stop": lambda user, up, down: workers.bulk(user, "stop_worker", [up]),
    "start_lab": lambda user, up, down: labs.lab_action(user, up, _lab(up), "start"),
    "stop_lab": lambda user, up, down: labs.lab_action(user, up, _lab(up), "stop"),
    "wipe_lab": lambda user, up, down: labs.lab_action(user, up, _lab(up), "wipe"),
    "delete_lab": lambda user, up, down: labs.lab_action(user, up, _lab(up), "delete"),
    "download_lab": lambda user, up, down: labs.download_lab(user, up, _lab(up)),
    "import_lab": lambda user, up, down: labs.import_lab(user, up, TOPOLOGY),
    "register_licence": lambda user, up, down: licence.register_licence(user, up, TOKEN, True),
    "deregister_licence": lambda user, up, down: licence.deregister_licence(user, up),
    "import_workers": lambda user, up, down: importing.import_workers(user, [up.region], {}, []),
    "refresh_worker": lambda user, up, down: refresh.refresh_worker(user, up),
    "refresh all": lambda user, up, down: refresh.refresh_all(user),
    "refresh now": lambda user, up, down: refresh.refresh_now(user, [up.pk]),
}
ADMIN_ONLY = ["terminate_worker", "register_licence", "deregister_licence", "import_workers"]


@pytest.mark.parametrize(
    ("role", "action"),
    [("viewer", name) for name in ACTIONS] + [("operator", name) for name in ADMIN_ONLY],
)
def test_each_action_function_checks_its_permission_itself(request, collected, role, action):
    user = request.getfixturevalue(role)
    up, down = of_state(collected, "running"), of_state(collected, "stopped")
    labs_before = list(Lab.objects.order_by("pk").values_list("lab_id", "state"))
    with pytest.raises(PermissionDenied):
        ACTIONS[action](user, up, down)
    assert not ActionEntry.objects.exists() and not OrmQ.objects.exists()
    assert Worker.objects.get(pk=up.pk).status == "running"
    assert Worker.objects.get(pk=down.pk).status == "stopped"
    assert list(Lab.objects.order_by("pk").values_list("lab_id", "state")) == labs_before


@pytest.mark.parametrize("failing", ["audit entry", "change log"])
def test_state_entry_and_change_log_are_one_transaction(
    operator, collected, monkeypatch, failing, django_capture_on_commit_callbacks
):
    """A stop whose audit entry (or change-log row) cannot be written leaves no pending state,
    no entry, no change-log row and no queued task: nothing the pages would show half-done."""
    up = of_state(collected, "running")
    changes_before = Change.objects.count()

    def cannot_write(*args, **kwargs):
        raise RuntimeError(f"the {failing} cannot be written")

    if failing == "audit entry":
        monkeypatch.setattr(ActionEntry.objects, "create", cannot_write)
    else:
        monkeypatch.setattr(audit, "record_change", cannot_write)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        workers.stop_worker(operator, up)
    after = Worker.objects.get(pk=up.pk)
    assert (after.status, after.pending_action, after.pending_since) == ("running", "", None)
    assert not ActionEntry.objects.exists()
    assert Change.objects.count() == changes_before
    assert not OrmQ.objects.exists()
