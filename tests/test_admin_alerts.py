"""The alerts admin: channels managed by the admin role only, their URL entered once, stored
sealed and shown masked; the "Send test" button; alerts and the outbox read-only."""

import pytest
from django.db import connection

from fleet.models import Alert, AlertChannel, AlertKind, Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


def test_a_channel_is_added_with_its_url_sealed_and_never_shown(admin_client_, receiver):
    url = receiver.url("secret-path-Tok3n")
    response = admin_client_.post(
        "/admin/fleet/alertchannel/add/",
        {
            "name": "ops",
            "url": url,
            "kinds": [AlertKind.WORKER_DOWN, AlertKind.LICENCE],
            "worker_tag": "Team=training",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = AlertChannel.objects.get()
    assert channel.url == url
    assert (channel.kinds, channel.worker_tag) == (["worker_down", "licence"], "Team=training")
    with connection.cursor() as cursor:
        cursor.execute("SELECT url_sealed FROM fleet_alertchannel")
        (stored,) = cursor.fetchone()
    assert "Tok3n" not in stored and "127.0.0.1" not in stored

    for page in ("/admin/fleet/alertchannel/", f"/admin/fleet/alertchannel/{channel.pk}/change/"):
        html = admin_client_.get(page).content.decode()
        assert "json://•••" in html
        assert "Tok3n" not in html and f"127.0.0.1:{receiver.port}" not in html


def test_saving_without_a_url_keeps_the_stored_one(admin_client_, channel):
    old = channel.url
    response = admin_client_.post(
        f"/admin/fleet/alertchannel/{channel.pk}/change/",
        {"name": "renamed", "url": "", "worker_tag": "", "enabled": "on"},
    )
    assert response.status_code == 302
    channel.refresh_from_db()
    assert (channel.name, channel.url, channel.kinds) == ("renamed", old, [])


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"url": ""}, "Enter the channel&#x27;s Apprise URL."),
        ({"url": "nosuchscheme://hunter2@example.com"}, "Apprise does not recognise this URL"),
        ({"url": "json://127.0.0.1/x", "worker_tag": "no equals"}, "Write the tag as KEY=VALUE"),
    ],
)
def test_bad_channels_are_refused_with_a_message(admin_client_, fields, error):
    data = {"name": "bad", "worker_tag": "", "enabled": "on", **fields}
    response = admin_client_.post("/admin/fleet/alertchannel/add/", data)
    assert response.status_code == 200
    html = response.content.decode()
    assert error in html
    assert "hunter2" not in html  # a refused URL is not echoed either
    assert not AlertChannel.objects.exists()


def test_send_test_button_reports_success_and_apprises_failure(admin_client_, channel, receiver):
    page = admin_client_.get(f"/admin/fleet/alertchannel/{channel.pk}/change/").content.decode()
    assert f'action="/admin/fleet/alertchannel/{channel.pk}/send-test/"' in page

    response = admin_client_.post(f"/admin/fleet/alertchannel/{channel.pk}/send-test/", follow=True)
    assert "Test sent to ops webhook." in response.content.decode()
    assert [r["title"] for r in receiver.received] == ["CML Fleet: test"]

    receiver.status = 500
    response = admin_client_.post(f"/admin/fleet/alertchannel/{channel.pk}/send-test/", follow=True)
    html = response.content.decode()
    assert "Test to ops webhook failed:" in html and "500" in html
    assert f"127.0.0.1:{receiver.port}" not in html

    assert (
        admin_client_.get(f"/admin/fleet/alertchannel/{channel.pk}/send-test/").status_code == 405
    )


def test_send_test_admin_action(admin_client_, channel, receiver):
    response = admin_client_.post(
        "/admin/fleet/alertchannel/",
        {"action": "send_tests", "_selected_action": [channel.pk]},
        follow=True,
    )
    assert "Test sent to ops webhook." in response.content.decode()
    assert len(receiver.received) == 1


def test_only_the_admin_role_manages_channels(client, operator, admin_user, channel, receiver):
    operator.is_staff = True
    operator.save()
    client.force_login(operator)
    assert client.get("/admin/fleet/alertchannel/").status_code == 403
    assert client.post(f"/admin/fleet/alertchannel/{channel.pk}/send-test/").status_code == 403
    assert receiver.received == []
    assert client.get("/admin/fleet/alert/").status_code == 200  # alerts: every role may look
    assert operator.has_perm("fleet.view_alert")
    assert not operator.has_perm("fleet.view_alertchannel")
    assert admin_user.has_perm("fleet.change_alertchannel")


def test_alerts_and_notifications_are_read_only(admin_client_, worker, channel):
    alert = Alert.objects.create(kind="licence", key="licence:1", worker=worker, message="m")
    note = Notification.objects.create(alert=alert, channel=channel, event="opened")
    for page in (
        "/admin/fleet/alert/",
        f"/admin/fleet/alert/{alert.pk}/change/",
        "/admin/fleet/notification/",
        f"/admin/fleet/notification/{note.pk}/change/",
    ):
        assert admin_client_.get(page).status_code == 200
    assert admin_client_.get("/admin/fleet/alert/add/").status_code == 403
    response = admin_client_.post(f"/admin/fleet/alert/{alert.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
