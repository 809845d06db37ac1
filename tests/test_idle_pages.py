"""The idle controls (snooze, auto-pause, mute) as audited actions, and what the worker page
and the list show of idle workers."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.models import ActionEntry, Change, Worker


@pytest.fixture
def idle(worker) -> Worker:
    now = timezone.now()
    Worker.objects.filter(pk=worker.pk).update(
        status="running",
        running_since=now - timedelta(hours=3),
        last_activity_at=now - timedelta(minutes=80),
        idle_since=now - timedelta(minutes=20),
        idle_stop_at=now + timedelta(minutes=10),
        activity_read_at=now,
        auto_pause=True,
        recent_activity=[
            {
                "at": (now - timedelta(minutes=80)).isoformat(),
                "category": "stop_lab",
                "user": "jdoe",
                "lab": "lab-1",
            }
        ],
    )
    return Worker.objects.get(pk=worker.pk)


@pytest.mark.parametrize(
    ("path", "data"),
    [("snooze", {"hours": "1"}), ("mute", {"hours": "4"}), ("auto-pause", {"auto_pause": "off"})],
)
def test_a_viewer_may_not_use_the_controls(client, viewer, idle, path, data):
    client.force_login(viewer)
    assert client.post(f"/workers/{idle.pk}/{path}", data).status_code == 403
    assert client.get(f"/workers/{idle.pk}/{path}").status_code == 405
    assert not ActionEntry.objects.exists()


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("snooze", {"hours": "3"}, "Snooze for 1, 2, 4 hours, or 0 to end it."),
        ("snooze", {"hours": "-1"}, "Choose one of the offered values."),
        ("snooze", {}, "Choose one of the offered values."),
        ("mute", {"hours": "99999"}, "Choose one of the offered values."),
        ("mute", {"hours": "5"}, "Mute for 1, 4, 24, 168 hours, or 0 to unmute."),
        ("auto-pause", {"auto_pause": "maybe"}, "Choose one of the offered values."),
    ],
)
def test_bad_values_are_refused_with_a_message(client, operator, idle, path, data, message):
    client.force_login(operator)
    response = client.post(f"/workers/{idle.pk}/{path}", data)
    assert (response.status_code, response.content.decode()) == (400, message)
    assert not ActionEntry.objects.exists()
    assert Worker.objects.get(pk=idle.pk).snooze_until is None


def test_each_control_is_an_audited_action_that_updates_the_pages(client, operator, idle):
    client.force_login(operator)
    client.post(f"/workers/{idle.pk}/auto-pause", {"auto_pause": "off"})
    client.post(f"/workers/{idle.pk}/mute", {"hours": "4"})
    response = client.post(f"/workers/{idle.pk}/mute", {"hours": "4"}, HTTP_HX_REQUEST="true")

    worker = Worker.objects.get(pk=idle.pk)
    assert worker.auto_pause is False and worker.idle_stop_at is None
    assert timedelta(minutes=239) < worker.muted_until - timezone.now() <= timedelta(hours=4)
    assert [(e.action, e.outcome) for e in ActionEntry.objects.order_by("pk")] == [
        ("set_auto_pause", "succeeded"),
        ("mute_worker", "succeeded"),
        ("mute_worker", "succeeded"),
    ]
    assert f'id="worker-{idle.pk}-idle"' in response.content.decode()  # the fresh section
    assert {"muted_until", "actions"} <= set(Change.objects.latest("id").fields)

    client.post(f"/workers/{idle.pk}/mute", {"hours": "0"})
    assert Worker.objects.get(pk=idle.pk).muted_until is None


def test_the_worker_page_shows_the_warning_the_idle_time_and_the_rule(client, viewer, idle):
    client.force_login(viewer)
    html = client.get(f"/workers/{idle.pk}/").content.decode()
    stop_at = timezone.localtime(idle.idle_stop_at).strftime("%H:%M")
    assert (
        "stops at <time datetime=" in html
        and f">{stop_at}</time></strong> unless someone uses it or snoozes it" in html
    )
    assert "idle</span> for 1 h 20 min" in html
    assert "A running worker is idle after 1 h without lab, node or user activity" in html
    assert "stop_lab" in html and "jdoe" in html
    assert "auto-paused 0 times, started 0 times" in html
    assert "Keep running 2 h" in html  # the snooze buttons (shown by CSS to operators only)


def test_the_list_filters_idle_workers_and_marks_them(client, viewer, idle):
    busy = Worker.objects.create(
        name="cml-worker-02",
        region="us-east-1",
        instance_id="i-0123456789abcdef1",
        status="running",
    )
    Worker.objects.filter(pk=busy.pk).update(muted_until=timezone.now() + timedelta(hours=1))
    client.force_login(viewer)

    html = client.get("/?idle=1").content.decode()
    assert "cml-worker-01" in html and "cml-worker-02" not in html
    assert ">stops " in html  # the warned worker's badge
    everyone = client.get("/").content.decode()
    assert 'class="muted-row"' in everyone and ">muted</span>" in everyone
    assert '<span class="value">1</span><span class="label">idle</span>' in everyone


def test_the_worker_page_lists_open_alerts_and_the_pass_updates_it(client, viewer, idle):
    from fleet.alerts.evaluate import run_pass

    changes_before = Change.objects.count()
    run_pass()  # the idle warning is an alert
    assert Change.objects.filter(pk__gt=changes_before, worker_id=idle.pk).get().fields == [
        "alerts"
    ]
    client.force_login(viewer)
    html = client.get(f"/workers/{idle.pk}/").content.decode()
    assert 'aria-label="Open alerts"' in html and "cml-worker-01 idle: stops at" in html
