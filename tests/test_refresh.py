"""POST /workers/<pk>/refresh and POST /workers/refresh."""

import contextlib
import re
import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.tasks import async_task

from fleet import tasks
from fleet.models import CollectionRun
from tests.fleet_fixtures import running


@pytest.fixture
def up_worker(fleet_workers, fleet_settings):
    return running(fleet_settings, fleet_workers)[0]


def test_it_collects_the_worker_and_answers_with_its_fragments(client, operator, up_worker):
    client.force_login(operator)
    response = client.post(f"/workers/{up_worker.pk}/refresh", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    html = response.content.decode()
    for fragment in ["row", "aws", "cml", "labs"]:
        assert f'id="worker-{up_worker.pk}-{fragment}"' in html
    assert 'hx-swap-oob="true"' in html
    assert "Refreshed" in html
    run = CollectionRun.objects.get()
    assert run.trigger == "refresh" and run.kind == "labs" and run.workers_seen == 1
    up_worker.refresh_from_db()
    assert up_worker.service_status == "available"


def test_within_the_minimum_interval_it_does_not_poll_again(client, operator, up_worker, settings):
    settings.REFRESH_MIN_INTERVAL_SECONDS = 600  # far beyond any pause of a loaded machine
    up_worker.last_polled_at = timezone.now() - timedelta(seconds=5)
    up_worker.save()
    client.force_login(operator)
    response = client.post(f"/workers/{up_worker.pk}/refresh", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    ago = re.search(r"was refreshed (\d+) s ago", response.content.decode())
    assert ago and 5 <= int(ago[1]) < 600
    assert not CollectionRun.objects.exists()


def test_without_htmx_it_redirects_back_with_a_message(client, operator, up_worker):
    client.force_login(operator)
    page = f"http://testserver/workers/{up_worker.pk}/"
    response = client.post(f"/workers/{up_worker.pk}/refresh", HTTP_REFERER=page)
    assert response.status_code == 302 and response["Location"] == page
    assert "Refreshed" in client.get(page).content.decode()


def test_it_ignores_a_foreign_referer(client, operator, up_worker):
    client.force_login(operator)
    response = client.post(f"/workers/{up_worker.pk}/refresh", HTTP_REFERER="https://evil.example/")
    assert response["Location"] == f"/workers/{up_worker.pk}/"


def test_viewers_may_not_refresh(client, viewer, worker):
    client.force_login(viewer)
    assert client.post(f"/workers/{worker.pk}/refresh").status_code == 403
    assert client.post("/workers/refresh").status_code == 403
    assert not CollectionRun.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client, worker):
    response = client.post(f"/workers/{worker.pk}/refresh")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_get_is_not_allowed(client, operator, worker):
    client.force_login(operator)
    assert client.get(f"/workers/{worker.pk}/refresh").status_code == 405
    assert client.get("/workers/refresh").status_code == 405


def test_an_unknown_worker_is_404(client, operator, db):
    client.force_login(operator)
    assert client.post("/workers/999999/refresh").status_code == 404


def test_it_needs_a_csrf_token(operator, worker):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(f"/workers/{worker.pk}/refresh").status_code == 403


def test_refresh_all_queues_one_full_cycle(client, operator, db):
    client.force_login(operator)
    response = client.post("/workers/refresh", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "queued" in response.content.decode()
    assert OrmQ.objects.count() == 1
    assert OrmQ.objects.get().func() == "fleet.tasks.collect_labs"


def test_refresh_all_queues_at_most_one_cycle_and_says_so(client, operator, db):
    client.force_login(operator)
    client.post("/workers/refresh", HTTP_HX_REQUEST="true")
    response = client.post("/workers/refresh", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "already queued or running" in response.content.decode()
    assert OrmQ.objects.count() == 1


def test_a_second_refresh_all_without_htmx_redirects_with_the_message(client, operator, db):
    client.force_login(operator)
    client.post("/workers/refresh", HTTP_REFERER="http://testserver/")
    client.get("/")  # the first message, shown once
    response = client.post("/workers/refresh", HTTP_REFERER="http://testserver/")
    assert response.status_code == 302 and response["Location"] == "http://testserver/"
    assert "already queued or running" in client.get("/").content.decode()
    assert OrmQ.objects.count() == 1


def test_refresh_all_is_refused_while_the_cycle_runs_and_accepted_once_it_ends(
    client, operator, db
):
    """The cluster's broker takes the task (running: its queue row is locked), then
    acknowledges it when the cycle has finished."""
    client.force_login(operator)
    client.post("/workers/refresh", HTTP_HX_REQUEST="true")
    broker = get_broker()
    [(ack_id, _payload)] = broker.dequeue()
    assert "already queued" in _refresh_all_note(client)
    broker.acknowledge(ack_id)
    assert "is queued" in _refresh_all_note(client)
    assert OrmQ.objects.count() == 1


def test_other_queued_tasks_do_not_block_refresh_all(client, operator, db):
    async_task("fleet.tasks.collect_labs", task_name="fleet: collect labs")
    client.force_login(operator)
    assert "is queued" in _refresh_all_note(client)
    assert OrmQ.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_clicks_at_once_from_two_processes_queue_one_cycle(operator, monkeypatch):
    """Each click runs in its own thread with its own database connection. Both reach the
    "is one pending?" check together unless the check and the enqueue are serialised: the first
    waits there for the second, which (serialised) can only come after it has queued."""
    both_checking = threading.Barrier(2, timeout=3)
    real_pending = tasks.refresh_all_pending

    def pending_after_the_other_click_checks_too() -> bool:
        # Serialised, the other click is waiting for the lock and the barrier times out.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_checking.wait()
        return real_pending()

    monkeypatch.setattr(tasks, "refresh_all_pending", pending_after_the_other_click_checks_too)
    notes: list[str] = []

    def click() -> None:
        try:
            client = Client()
            client.force_login(operator)
            notes.append(_refresh_all_note(client))
        finally:
            connections.close_all()

    clicks = [threading.Thread(target=click) for _ in range(2)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join()
    assert OrmQ.objects.count() == 1
    assert sorted("already" in note for note in notes) == [False, True]


def _refresh_all_note(client) -> str:
    return client.post("/workers/refresh", HTTP_HX_REQUEST="true").content.decode()
