"""Importing workers from the page (preview, then import), the command with several regions,
the scheduled auto-import, and the audit page."""

import getpass

import pytest
from django.core.management import call_command

from fleet.actions.importing import auto_import
from fleet.models import ActionEntry, Worker
from fleet.tasks import AUTO_IMPORT_SCHEDULE, schedules


def test_only_admins_import(client, operator, db):
    client.force_login(operator)
    assert client.get("/workers/import").status_code == 403
    assert client.post("/workers/import", {"region": "us-east-1", "import": "1"}).status_code == 403


def test_preview_then_import(client, admin_user, fleet_settings):
    client.force_login(admin_user)
    form = {"region": ["us-east-1", "eu-west-1"], "tags": "Role=cml-worker", "preview": "1"}
    html = client.post("/workers/import", form).content.decode()
    total = len(fleet_settings.instances)
    assert f"{total} matching instances, {total} new" in html
    assert not Worker.objects.exists()
    response = client.post("/workers/import", {**form, "import": "1"}, follow=True)
    assert f"imported {total} new" in response.content.decode()
    assert Worker.objects.count() == total
    entry = ActionEntry.objects.get()
    assert (entry.action, entry.outcome, entry.username) == ("import_workers", "succeeded", "ada")
    html = client.post("/workers/import", form).content.decode()
    assert f"{total} matching instances, 0 new" in html


def test_the_page_reports_bad_input(client, admin_user, fleet_settings):
    client.force_login(admin_user)
    html = client.post("/workers/import", {"region": "us-east-1", "tags": "novalue"}).content
    assert b"use KEY=VALUE" in html
    assert b"choose at least one region" in client.post("/workers/import", {}).content


def test_the_command_takes_region_more_than_once(fleet_settings, db, capsys):
    call_command("import_workers", "--region", "us-east-1", "--region", "eu-west-1")
    assert Worker.objects.count() == len(fleet_settings.instances)
    assert {w.region for w in Worker.objects.all()} == {"us-east-1", "eu-west-1"}


def test_the_command_is_audited_as_the_system_run_by_the_os_account(fleet_settings, db):
    call_command("import_workers", "--region", "us-east-1")
    entry = ActionEntry.objects.get()
    assert entry.user is None and entry.username == f"system ({getpass.getuser()})"
    assert (entry.action, entry.outcome) == ("import_workers", "succeeded")


def test_auto_import_is_off_by_default(settings):
    assert settings.AUTO_IMPORT_TAGS == {}
    assert AUTO_IMPORT_SCHEDULE not in schedules()
    assert "off" in auto_import()


def test_auto_import_adds_new_instances_and_marks_gone_ones(fleet_settings, settings, db):
    settings.AUTO_IMPORT_TAGS = {"Role": "cml-worker"}
    assert AUTO_IMPORT_SCHEDULE in schedules()
    ghost = Worker.objects.create(region="us-east-1", instance_id="i-0123456789abcdef0")
    auto_import()
    assert Worker.objects.count() == len(fleet_settings.instances) + 1
    ghost.refresh_from_db()
    assert ghost.status == "terminated"
    assert ActionEntry.objects.filter(worker=ghost, username="system").exists()


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", 2), ("?user=ada", 1), ("?outcome=failed", 1), ("?action=stop_worker", 1)],
)
def test_the_audit_page_filters(client, viewer, admin_user, worker, query, expected):
    ActionEntry.objects.create(
        user=admin_user,
        username="ada",
        action="start_worker",
        worker=worker,
        target="w",
        outcome="succeeded",
    )
    ActionEntry.objects.create(
        username="otto", action="stop_worker", worker=worker, target="w", outcome="failed"
    )
    client.force_login(viewer)
    html = client.get(f"/audit/{query}").content.decode()
    assert html.count('<span class="badge outcome-') == expected
    assert client.post("/audit/").status_code == 405


def test_the_worker_page_shows_its_recent_actions(client, viewer, worker):
    ActionEntry.objects.create(
        username="otto",
        action="stop_worker",
        worker=worker,
        target="w",
        outcome="noop",
        message="already stopped",
    )
    client.force_login(viewer)
    html = client.get(f"/workers/{worker.pk}/").content.decode()
    assert f'id="worker-{worker.pk}-actions"' in html and "already stopped" in html
