"""Lab actions through the pages against the simulated CML 2.9: start, stop, wipe, delete,
download and import; CML's refusals in its own words; CML down."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fleet.models import ActionEntry, Lab, Worker
from tests.action_fixtures import of_state
from tests.fleet_fixtures import cml_of

TOPOLOGY = (
    b"lab:\n  title: Imported OSPF\n  version: 0.3.0\nnodes:\n  - id: n0\n  - id: n1\nlinks: []\n"
)


@pytest.fixture
def up(collected) -> Worker:
    return of_state(collected, "running")


def a_lab(fleet_settings, worker: Worker, state: str) -> Lab:
    """One of the worker's labs, put in `state` on the simulated CML and in the database."""
    lab = Lab.objects.filter(worker=worker).first()
    cml_of(fleet_settings, worker).labs[lab.lab_id]["state"] = state
    Lab.objects.filter(pk=lab.pk).update(state=state)
    lab.state = state
    return lab


@pytest.mark.parametrize(
    ("verb", "role", "status"),
    [
        ("start", "viewer", 403),
        ("wipe", "viewer", 403),
        ("delete", "operator", 403),
        ("start", None, 302),
    ],
)
def test_lab_actions_need_their_permission(client, request, worker, verb, role, status):
    if role:
        client.force_login(request.getfixturevalue(role))
    lab = Lab.objects.create(worker=worker, lab_id="lab-1", title="t")
    assert client.post(f"/workers/{worker.pk}/labs/{lab.lab_id}/{verb}").status_code == status
    assert not ActionEntry.objects.exists()


def test_lab_actions_refuse_get(client, admin_user, worker):
    client.force_login(admin_user)
    Lab.objects.create(worker=worker, lab_id="lab-1", title="t")
    for verb in ("start", "stop", "wipe", "delete"):
        assert client.get(f"/workers/{worker.pk}/labs/lab-1/{verb}").status_code == 405


def test_start_then_stop_a_lab(client, operator, up, fleet_settings):
    lab = a_lab(fleet_settings, up, "STOPPED")
    client.force_login(operator)
    response = client.post(f"/workers/{up.pk}/labs/{lab.lab_id}/start", HTTP_HX_REQUEST="true")
    assert f'id="worker-{up.pk}-labs"' in response.content.decode()
    assert Lab.objects.get(pk=lab.pk).state == "STARTED"
    assert cml_of(fleet_settings, up).labs[lab.lab_id]["state"] == "STARTED"
    client.post(f"/workers/{up.pk}/labs/{lab.lab_id}/stop")
    assert Lab.objects.get(pk=lab.pk).state == "STOPPED"
    assert list(ActionEntry.objects.values_list("action", "outcome")) == [
        ("stop_lab", "succeeded"),
        ("start_lab", "succeeded"),
    ]


def test_starting_a_started_lab_does_nothing(operator, up, fleet_settings, client):
    lab = a_lab(fleet_settings, up, "STARTED")
    served = sum(cml_of(fleet_settings, up).requests.values())
    client.force_login(operator)
    client.post(f"/workers/{up.pk}/labs/{lab.lab_id}/start")
    entry = ActionEntry.objects.get()
    assert entry.outcome == "noop" and "already Started" in entry.message
    assert sum(cml_of(fleet_settings, up).requests.values()) == served


def test_wiping_a_started_lab_shows_cmls_refusal(client, operator, up, fleet_settings):
    lab = a_lab(fleet_settings, up, "STARTED")
    client.force_login(operator)
    response = client.post(f"/workers/{up.pk}/labs/{lab.lab_id}/wipe", HTTP_HX_REQUEST="true")
    assert "is not stopped: stop it before wiping it" in response.content.decode()
    entry = ActionEntry.objects.get()
    assert entry.outcome == "failed" and entry.message.startswith("CML refused (400)")
    assert Lab.objects.get(pk=lab.pk).state == "STARTED"


def test_wipe_a_stopped_lab(client, operator, up, fleet_settings):
    lab = a_lab(fleet_settings, up, "STOPPED")
    client.force_login(operator)
    client.post(f"/workers/{up.pk}/labs/{lab.lab_id}/wipe")
    assert Lab.objects.get(pk=lab.pk).state == "DEFINED_ON_CORE"


def test_delete_asks_for_confirmation_then_deletes(client, admin_user, up, fleet_settings):
    lab = a_lab(fleet_settings, up, "DEFINED_ON_CORE")
    client.force_login(admin_user)
    response = client.post(f"/workers/{up.pk}/labs/{lab.lab_id}/delete")
    assert response.status_code == 200 and 'name="confirm" value="yes"' in response.content.decode()
    assert Lab.objects.filter(pk=lab.pk).exists() and not ActionEntry.objects.exists()
    client.post(f"/workers/{up.pk}/labs/{lab.lab_id}/delete", {"confirm": "yes"})
    assert not Lab.objects.filter(pk=lab.pk).exists()
    assert lab.lab_id not in cml_of(fleet_settings, up).labs
    assert Worker.objects.get(pk=up.pk).labs_count == Lab.objects.filter(worker=up).count()


@pytest.mark.parametrize(
    ("fault", "words"),
    [({"http_500": True}, "CML refused (500)"), ({"hang": True}, "did not answer")],
)
def test_cml_down_fails_the_lab_action(operator, up, fleet_settings, settings, fault, words):
    from fleet.actions.labs import lab_action

    settings.CML_REQUEST_TIMEOUT_SECONDS = 1
    lab = a_lab(fleet_settings, up, "STOPPED")
    cml_of(fleet_settings, up).set_knobs(fault)
    entry = lab_action(operator, up, lab, "start")
    assert entry.outcome == "failed" and words in entry.message
    assert Lab.objects.get(pk=lab.pk).state == "STOPPED"


def test_a_stopped_worker_has_no_cml_to_ask(operator, collected):
    from fleet.actions.labs import lab_action

    down = of_state(collected, "stopped")
    lab = Lab.objects.create(worker=down, lab_id="lab-x", title="x", state="STOPPED")
    entry = lab_action(operator, down, lab, "start")
    assert entry.outcome == "failed" and "not running" in entry.message


def test_download_gives_the_topology_yaml(client, operator, up, fleet_settings):
    lab = a_lab(fleet_settings, up, "STOPPED")
    client.force_login(operator)
    assert client.post(f"/workers/{up.pk}/labs/{lab.lab_id}/download").status_code == 405
    response = client.get(f"/workers/{up.pk}/labs/{lab.lab_id}/download")
    assert response.status_code == 200 and response["Content-Type"].startswith("application/x-yaml")
    assert "attachment" in response["Content-Disposition"]
    assert b"lab:\n  title:" in response.content
    assert ActionEntry.objects.get().action == "download_lab"


def test_import_a_lab_from_a_file(client, admin_user, up, fleet_settings):
    client.force_login(admin_user)
    upload = SimpleUploadedFile("ospf.yaml", TOPOLOGY, content_type="application/x-yaml")
    client.post(f"/workers/{up.pk}/labs/import", {"topology": upload})
    entry = ActionEntry.objects.get()
    assert entry.outcome == "succeeded", entry.message
    lab = Lab.objects.get(worker=up, title="Imported OSPF")
    assert lab.state == "DEFINED_ON_CORE" and lab.node_count == 2
    assert lab.lab_id in cml_of(fleet_settings, up).labs


def test_import_refuses_a_file_over_the_cap_and_cmls_refusal_is_shown(
    client, admin_user, up, settings
):
    settings.LAB_IMPORT_MAX_BYTES = 1024
    client.force_login(admin_user)
    big = SimpleUploadedFile("big.yaml", b"lab:\n" + b"#" * 2000)
    response = client.post(f"/workers/{up.pk}/labs/import", {"topology": big}, follow=True)
    assert "over 1024 bytes" in response.content.decode()
    assert not ActionEntry.objects.exists()
    bad = SimpleUploadedFile("bad.yaml", b"nodes: []\n")
    response = client.post(f"/workers/{up.pk}/labs/import", {"topology": bad}, follow=True)
    assert "no &#x27;lab&#x27; section" in response.content.decode()
    assert ActionEntry.objects.get().outcome == "failed"


def test_operators_may_not_import_labs(client, operator, worker):
    client.force_login(operator)
    assert client.post(f"/workers/{worker.pk}/labs/import").status_code == 403
