"""Licence registration and deregistration against the simulated CML: IN_PROGRESS then
COMPLETED, a bad token failing, CML down meanwhile; the token is never stored or logged."""

import logging

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import PermissionDenied
from django.views.debug import ExceptionReporter
from django_q.models import OrmQ

from fleet.actions import licence
from fleet.actions.cml_api import CMLApi
from fleet.models import ActionEntry, Change, Worker
from fleet.web import actions as views
from tests.action_fixtures import of_state, run_queued
from tests.fleet_fixtures import cml_of

TOKEN = "NzY4ZGQ0ZjMtc2VjcmV0LXRva2Vu"


@pytest.fixture
def unregistered(collected, fleet_settings, monkeypatch) -> Worker:
    monkeypatch.setattr(licence, "POLL_SECONDS", 0.05)
    worker = of_state(collected, "running")
    cml = cml_of(fleet_settings, worker)
    cml.registration_status, cml.authorization_status = "NOT_REGISTERED", "EVAL"
    Worker.objects.filter(pk=worker.pk).update(licence={"registration": "NOT_REGISTERED"})
    worker.refresh_from_db()
    return worker


@pytest.mark.parametrize(("role", "status"), [("viewer", 403), ("operator", 403), (None, 302)])
def test_only_admins_register(client, request, worker, role, status):
    if role:
        client.force_login(request.getfixturevalue(role))
    for path in ("register", "deregister"):
        assert client.post(f"/workers/{worker.pk}/licence/{path}").status_code == status
    assert not ActionEntry.objects.exists()


def test_get_is_not_allowed(client, admin_user, worker):
    client.force_login(admin_user)
    assert client.get(f"/workers/{worker.pk}/licence/register").status_code == 405
    assert client.get(f"/workers/{worker.pk}/licence/deregister").status_code == 405


def _holding(codename: str) -> User:
    user = User.objects.create_user(username=f"only-{codename}")
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=[codename, "view_worker", "view_lab"])
    )
    return user


def test_the_admin_role_holds_both_licence_permissions(db):
    granted = set(Group.objects.get(name="admin").permissions.values_list("codename", flat=True))
    assert {"register_licence", "deregister_licence"} <= granted
    operator = Group.objects.get(name="operator").permissions
    assert not operator.filter(codename__in=["register_licence", "deregister_licence"]).exists()


def test_registering_does_not_allow_deregistering(client, collected):
    worker = of_state(collected, "running")
    registrar = _holding("register_licence")
    client.force_login(registrar)
    assert client.post(f"/workers/{worker.pk}/licence/deregister").status_code == 403
    with pytest.raises(PermissionDenied):
        licence.deregister_licence(registrar, worker)
    assert not ActionEntry.objects.exists()
    page = client.get(f"/workers/{worker.pk}/").content.decode()
    assert "licence/register" in page and "licence/deregister" not in page
    # The register endpoint lets the same user through (an empty token is refused, audited).
    client.post(f"/workers/{worker.pk}/licence/register", {"token": ""})
    assert ActionEntry.objects.get().action == "register_licence"


def test_deregistering_does_not_allow_registering(client, collected):
    worker = of_state(collected, "running")
    deregistrar = _holding("deregister_licence")
    client.force_login(deregistrar)
    assert (
        client.post(f"/workers/{worker.pk}/licence/register", {"token": TOKEN}).status_code == 403
    )
    with pytest.raises(PermissionDenied):
        licence.register_licence(deregistrar, worker, TOKEN)
    assert not ActionEntry.objects.exists()
    page = client.get(f"/workers/{worker.pk}/").content.decode()
    assert "licence/deregister" in page and "licence/register" not in page
    client.post(f"/workers/{worker.pk}/licence/deregister")
    entry = ActionEntry.objects.get()
    assert (entry.action, entry.outcome) == ("deregister_licence", "succeeded")


def test_registration_goes_pending_then_completes(
    client, admin_user, unregistered, fleet_settings, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/workers/{unregistered.pk}/licence/register", {"token": TOKEN}, HTTP_HX_REQUEST="true"
        )
    assert "registering licence…" in response.content.decode()
    assert cml_of(fleet_settings, unregistered).registration_status == "IN_PROGRESS"
    entry = ActionEntry.objects.get()
    assert entry.outcome == "pending"
    run_queued()
    entry.refresh_from_db()
    worker = Worker.objects.get(pk=unregistered.pk)
    assert entry.outcome == "succeeded" and worker.license_state == "licensed"
    assert worker.licence["registration"] == "COMPLETED" and worker.licence["features"]
    assert not worker.pending_action
    page = client.get(f"/workers/{worker.pk}/").content.decode()
    assert "IN_COMPLIANCE" in page and "CML - Enterprise License" in page
    # The token is nowhere but in CML.
    stored = [
        *ActionEntry.objects.values_list("message", "target"),
        *Change.objects.values_list("fields", flat=True),
        *OrmQ.objects.values_list("payload", flat=True),
        *Worker.objects.values_list("licence", flat=True),
    ]
    assert TOKEN not in repr(stored)
    assert TOKEN not in caplog.text


def test_a_bad_token_fails_with_cmls_reason(admin_user, unregistered):
    entry = licence.register_licence(admin_user, unregistered, "bad-" + TOKEN)
    assert entry.outcome == "pending"
    licence.settle(entry.pk)
    entry.refresh_from_db()
    assert entry.outcome == "failed" and "invalid or expired" in entry.message
    assert Worker.objects.get(pk=unregistered.pk).licence["registration"] == "FAILED"


def test_a_malformed_token_is_refused_at_once(admin_user, unregistered):
    entry = licence.register_licence(admin_user, unregistered, "short-tok")
    assert entry.outcome == "failed" and "Invalid registration token" in entry.message
    assert not Worker.objects.get(pk=unregistered.pk).pending_action


def test_registering_a_registered_worker_does_nothing_unless_reregister(admin_user, collected):
    worker = of_state(collected, "running")
    assert worker.licence["registration"] == "COMPLETED"  # collected from /licensing
    assert licence.register_licence(admin_user, worker, TOKEN).outcome == "noop"
    assert licence.register_licence(admin_user, worker, TOKEN, reregister=True).outcome == "pending"


def test_cml_down_in_mid_registration_fails_at_the_deadline(
    admin_user, unregistered, fleet_settings, settings
):
    entry = licence.register_licence(admin_user, unregistered, TOKEN)
    settings.ACTION_DEADLINE_SECONDS = 1
    cml_of(fleet_settings, unregistered).http_500 = True
    licence.settle(entry.pk)
    entry.refresh_from_db()
    assert entry.outcome == "failed" and "CML refused (500)" in entry.message
    assert not Worker.objects.get(pk=unregistered.pk).pending_action


def test_deregister(client, admin_user, collected, fleet_settings):
    worker = of_state(collected, "running")
    client.force_login(admin_user)
    client.post(f"/workers/{worker.pk}/licence/deregister")
    worker.refresh_from_db()
    entry = ActionEntry.objects.get()
    assert (entry.action, entry.outcome) == ("deregister_licence", "succeeded")
    assert worker.licence["registration"] == "NOT_REGISTERED"
    assert worker.license_state == "evaluation"
    again = licence.deregister_licence(admin_user, worker)
    assert again.outcome == "noop"


def test_an_error_report_of_a_crashed_registration_shows_no_token(
    rf, admin_user, unregistered, monkeypatch
):
    """The report Django mails to ADMINS (or shows with DEBUG) lists the POST data and every
    frame's variables: the token is starred in both, down to the frame that crashed."""

    def crash(self, method, path, **kwargs):
        raise RuntimeError("the CML client crashed")

    monkeypatch.setattr(CMLApi, "call", crash)
    request = rf.post(f"/workers/{unregistered.pk}/licence/register", {"token": TOKEN})
    request.user = admin_user
    with pytest.raises(RuntimeError) as failure:
        views.licence_register(request, pk=unregistered.pk)
    report = ExceptionReporter(request, failure.type, failure.value, failure.tb)
    for text in (report.get_traceback_text(), report.get_traceback_html()):
        assert "the CML client crashed" in text and "crash" in text
        assert TOKEN not in text
