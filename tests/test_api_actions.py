"""Actions through the API against the simulated fleet: the same functions as the pages, 202
with the audit entry, and the entry polled until it settles."""

import pytest

from fleet.actions import workers as worker_actions
from fleet.models import ActionEntry, Lab, Worker
from tests.action_fixtures import of_state, run_queued
from tests.fleet_fixtures import cml_of


@pytest.fixture
def fast_polls(monkeypatch):
    monkeypatch.setattr(worker_actions, "POLL_SECONDS", 0.05)


def test_stop_answers_202_and_the_entry_settles(
    api_as, collected, fast_polls, django_capture_on_commit_callbacks
):
    up = of_state(collected, "running")
    client = api_as("operator")
    with django_capture_on_commit_callbacks(execute=True):  # queues the settle task
        response = client.post(f"/api/v1/workers/{up.pk}/stop")
    assert response.status_code == 202
    entry = response.json()
    assert entry["outcome"] == "pending" and entry["action"] == "stop_worker"
    assert entry["username"] == "otto" and entry["worker_id"] == up.pk
    assert response["Location"] == entry["url"] == f"/api/v1/audit/{entry['id']}"
    assert Worker.objects.get(pk=up.pk).pending_action == "stop"
    polled = client.get(entry["url"]).json()
    assert polled["outcome"] == "pending"
    run_queued()  # what the cluster does: follow EC2 until the instance is stopped
    settled = client.get(entry["url"]).json()
    assert settled["outcome"] == "succeeded" and settled["finished_at"]
    assert Worker.objects.get(pk=up.pk).status == "stopped"


def test_start_of_a_running_worker_is_a_noop(api_as, collected):
    up = of_state(collected, "running")
    body = api_as("operator").post(f"/api/v1/workers/{up.pk}/start").json()
    assert body["outcome"] == "noop" and "already running" in body["message"]
    assert ActionEntry.objects.get().pk == body["id"]


def test_refresh_collects_the_worker(api_as, collected, settings):
    settings.REFRESH_MIN_INTERVAL_SECONDS = 0
    up = of_state(collected, "running")
    response = api_as("operator").post(f"/api/v1/workers/{up.pk}/refresh")
    assert response.status_code == 202
    assert response.json()["outcome"] == "succeeded"
    assert response.json()["message"] == f"Refreshed {up}."


def test_refresh_all_queues_one_cycle(api_as, db):
    client = api_as("operator")
    first = client.post("/api/v1/workers/refresh").json()
    second = client.post("/api/v1/workers/refresh").json()
    assert (first["outcome"], second["outcome"]) == ("succeeded", "noop")


def test_lab_stop_and_wipe_through_the_api(api_as, collected, fleet_settings):
    up = of_state(collected, "running")
    lab = Lab.objects.filter(worker=up).first()
    cml_of(fleet_settings, up).labs[lab.lab_id]["state"] = "STARTED"
    Lab.objects.filter(pk=lab.pk).update(state="STARTED")
    client = api_as("operator")
    wipe = client.post(f"/api/v1/workers/{up.pk}/labs/{lab.lab_id}/wipe").json()
    assert wipe["outcome"] == "failed" and "CML refused" in wipe["message"]  # in CML's words
    stop = client.post(f"/api/v1/workers/{up.pk}/labs/{lab.lab_id}/stop")
    assert stop.status_code == 202 and stop.json()["outcome"] == "succeeded"
    assert stop["Location"] == stop.json()["url"]
    assert Lab.objects.get(pk=lab.pk).state == "STOPPED"
    assert cml_of(fleet_settings, up).labs[lab.lab_id]["state"] == "STOPPED"
    assert client.get(f"/api/v1/workers/{up.pk}/labs/{lab.lab_id}").json()["state"] == "STOPPED"
