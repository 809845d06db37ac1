"""Refresh on the one audited action path: the Refresh button, Refresh all and
`manage.py refresh_workers` each leave an audit entry (who, target, outcome, message); the
responses themselves are tested in test_refresh.py and test_commands.py."""

import getpass
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import OrmQ

from fleet.actions import refresh
from fleet.models import ActionEntry, Change, CollectionRun
from tests.fleet_fixtures import cml_of, running


@pytest.fixture
def up_worker(fleet_workers, fleet_settings):
    return running(fleet_settings, fleet_workers)[0]


def test_the_refresh_button_is_audited(client, operator, up_worker):
    client.force_login(operator)
    response = client.post(f"/workers/{up_worker.pk}/refresh", HTTP_HX_REQUEST="true")
    assert "Refreshed" in response.content.decode()
    entry = ActionEntry.objects.get()
    assert (entry.user, entry.username, entry.action) == (operator, "otto", "refresh_worker")
    assert (entry.worker_id, entry.target) == (up_worker.pk, str(up_worker))
    assert (entry.outcome, entry.message) == ("succeeded", f"Refreshed {up_worker}.")
    assert entry.finished_at is not None
    # The worker's pages list its recent actions live: the entry has its change-log row.
    assert "actions" in Change.objects.filter(worker_id=up_worker.pk).latest("id").fields
    page = client.get(f"/workers/{up_worker.pk}/").content.decode()
    assert f"Refreshed {up_worker}." in page


def test_a_refresh_within_the_minimum_interval_is_audited_as_nothing_to_do(
    client, operator, up_worker, settings
):
    settings.REFRESH_MIN_INTERVAL_SECONDS = 600
    up_worker.last_polled_at = timezone.now() - timedelta(seconds=5)
    up_worker.save()
    client.force_login(operator)
    client.post(f"/workers/{up_worker.pk}/refresh", HTTP_HX_REQUEST="true")
    entry = ActionEntry.objects.get()
    assert entry.outcome == "noop" and "was refreshed" in entry.message
    assert not CollectionRun.objects.exists()


def test_a_refresh_that_cannot_read_the_worker_is_audited_as_failed(
    client, operator, up_worker, fleet_settings
):
    cml_of(fleet_settings, up_worker).http_500 = True
    client.force_login(operator)
    response = client.post(f"/workers/{up_worker.pk}/refresh", HTTP_HX_REQUEST="true")
    entry = ActionEntry.objects.get()
    assert entry.outcome == "failed" and entry.message.startswith(f"Refreshed {up_worker}. Error:")
    assert "Error:" in response.content.decode()


def test_refresh_all_is_audited_queued_then_nothing_to_do(client, operator, db):
    client.force_login(operator)
    client.post("/workers/refresh", HTTP_HX_REQUEST="true")
    client.post("/workers/refresh", HTTP_HX_REQUEST="true")
    first, second = ActionEntry.objects.order_by("id")
    assert (first.username, first.action, first.target, first.worker) == (
        "otto",
        "refresh_worker",
        "all workers",
        None,
    )
    assert (first.outcome, first.message) == ("succeeded", refresh.QUEUED)
    assert (second.outcome, second.message) == ("noop", refresh.ALREADY_QUEUED)
    assert OrmQ.objects.count() == 1


def test_a_refused_refresh_is_not_audited(client, viewer, worker):
    client.force_login(viewer)
    client.post(f"/workers/{worker.pk}/refresh")
    client.post("/workers/refresh")
    assert not ActionEntry.objects.exists()


def test_the_refresh_functions_check_the_permission_themselves(viewer, worker):
    with pytest.raises(PermissionDenied):
        refresh.refresh_worker(viewer, worker)
    with pytest.raises(PermissionDenied):
        refresh.refresh_all(viewer)
    with pytest.raises(PermissionDenied):
        refresh.refresh_now(viewer, [worker.pk])
    assert not ActionEntry.objects.exists()
    assert not CollectionRun.objects.exists() and not OrmQ.objects.exists()


def test_the_command_is_audited_as_the_system_run_by_the_os_account(fleet_workers):
    call_command("refresh_workers")
    entry = ActionEntry.objects.get()
    run = CollectionRun.objects.get()
    assert entry.user is None and entry.username == f"system ({getpass.getuser()})"
    assert (entry.action, entry.target, entry.worker) == ("refresh_worker", "all workers", None)
    assert (entry.outcome, entry.message) == ("succeeded", run.summary())


def test_the_command_on_one_worker_is_that_workers_action(fleet_workers):
    call_command("refresh_workers", str(fleet_workers[0].pk), "--no-labs")
    entry = ActionEntry.objects.get()
    assert entry.worker == fleet_workers[0] and entry.target == str(fleet_workers[0])
    assert "metrics run" in entry.message


def test_the_command_with_a_failing_worker_is_audited_as_failed(up_worker, fleet_settings):
    cml_of(fleet_settings, up_worker).http_500 = True
    call_command("refresh_workers", str(up_worker.pk))
    entry = ActionEntry.objects.get()
    assert entry.outcome == "failed" and "failed 1" in entry.message


def test_the_command_refusing_unknown_ids_acts_on_nothing(fleet_workers):
    with pytest.raises(CommandError):
        call_command("refresh_workers", "999999")
    assert not ActionEntry.objects.exists()
