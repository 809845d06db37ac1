"""Delivery of the outbox through Apprise, end to end: to a real HTTP receiver and a real SMTP
server on loopback, retried with backoff on failure, never sending a muted notification, and
never writing a channel's URL to the log or an error."""

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.alerts.delivery import MAX_ATTEMPTS, backoff, deliver_due, redact
from fleet.alerts.evaluate import run_pass
from fleet.models import AlertChannel, Notification, NotificationStatus, Worker
from fleet.models.changes import record_change

pytestmark = pytest.mark.django_db


def break_cml(worker) -> None:
    worker.status, worker.service_status, worker.consecutive_failures = "running", "error", 3
    worker.save()
    record_change(worker.pk, fields=["service_status"])


def mend_cml(worker) -> None:
    worker.service_status, worker.consecutive_failures = "available", 0
    worker.save()
    record_change(worker.pk, fields=["service_status"])


def test_an_alert_and_its_recovery_reach_a_real_http_receiver_once(worker, channel, receiver):
    t0 = timezone.now()
    break_cml(worker)
    run_pass(now=t0)
    assert deliver_due().sent == 1
    assert receiver.received == [
        {
            "path": "/hook",
            "version": "1.0",
            "title": "CML Fleet: CML unavailable",
            "message": "cml-worker-01: CML error for 3 cycles",
            "attachments": [],
            "type": "info",
        }
    ]
    sent = Notification.objects.get()
    assert (sent.status, sent.attempts, sent.last_error) == (NotificationStatus.SENT, 1, "")
    assert sent.sent_at is not None

    assert deliver_due().sent == 0  # nothing twice
    mend_cml(worker)
    run_pass(now=t0 + timedelta(minutes=12))
    deliver_due(now=t0 + timedelta(minutes=12))
    assert [r["message"] for r in receiver.received] == [
        "cml-worker-01: CML error for 3 cycles",
        "cml-worker-01: CML available again after 12 min",
    ]
    assert receiver.received[1]["title"] == "CML Fleet: resolved: CML unavailable"


def test_an_alert_reaches_a_real_smtp_server(worker, smtp_server):
    mail = AlertChannel(name="ops mail")
    mail.url = (
        f"mailto://fleet@example.com?smtp=127.0.0.1&port={smtp_server.port}&mode=insecure"
        "&to=ops@example.com"
    )
    mail.save()
    break_cml(worker)
    run_pass()
    assert deliver_due().sent == 1
    [message] = smtp_server.mailbox.messages
    assert message.rcpt_tos == ["ops@example.com"]
    text = message.content.decode()
    assert "Subject: CML Fleet: CML unavailable" in text
    assert "cml-worker-01: CML error for 3 cycles" in text


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(
    worker, channel, receiver, caplog, capfd
):
    receiver.status = 500
    break_cml(worker)
    run_pass()
    now = timezone.now()
    result = deliver_due(now=now)
    assert (result.sent, result.retrying) == (0, 1)
    pending = Notification.objects.get()
    assert pending.status == NotificationStatus.PENDING
    assert pending.attempts == 1
    assert pending.next_attempt_at == now + timedelta(minutes=1)
    assert "500" in pending.last_error
    assert deliver_due(now=now + timedelta(seconds=30)).retrying == 0  # not due yet

    waits = []
    for _ in range(MAX_ATTEMPTS - 1):
        pending.refresh_from_db()
        waits.append(pending.next_attempt_at - now)
        now = pending.next_attempt_at
        deliver_due(now=now)
    pending.refresh_from_db()
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 30, 30)]
    assert (pending.status, pending.attempts) == (NotificationStatus.FAILED, MAX_ATTEMPTS)
    assert receiver.received == []

    # The URL (host, port and path) is in neither the error, the log nor the output.
    url = channel.url
    secret_parts = [url, f"127.0.0.1:{receiver.port}", "/hook"]
    out, err = capfd.readouterr()
    for text in (pending.last_error, caplog.text, out, err):
        assert not any(part in text for part in secret_parts), text
    assert "attempt 8" in caplog.text


def test_a_receiver_that_recovers_gets_the_notification_on_retry(worker, channel, receiver):
    receiver.status = 500
    break_cml(worker)
    run_pass()
    deliver_due()
    receiver.status = 200
    assert deliver_due(now=timezone.now() + timedelta(minutes=2)).sent == 1
    sent = Notification.objects.get()
    assert (sent.status, sent.attempts, sent.last_error) == (NotificationStatus.SENT, 2, "")
    assert len(receiver.received) == 1


def test_muted_notifications_are_never_sent(worker, channel, receiver):
    worker.muted_until = timezone.now() + timedelta(hours=1)
    worker.save()
    break_cml(worker)
    run_pass()
    assert deliver_due().sent == 0
    assert Notification.objects.get().status == NotificationStatus.MUTED
    assert receiver.received == []


def test_an_unreadable_url_fails_without_naming_it(worker, channel, settings):
    break_cml(worker)
    run_pass()
    settings.SECRET_KEY = "rotated-" + settings.SECRET_KEY  # the sealed URL no longer opens
    deliver_due()
    failed = Notification.objects.get()
    assert failed.attempts == 1
    assert "could not be decrypted" in failed.last_error


def test_backoff_and_redaction():
    assert [backoff(n) for n in (1, 2, 3, 6, 7)] == [
        timedelta(minutes=m) for m in (1, 2, 4, 30, 30)
    ]
    url = "slack://TokenA1/TokenB22/TokenC333/#ops"
    assert redact("Failed to send to slack://TokenA1/TokenB22/TokenC333/#ops", url) == (
        "Failed to send to ***"
    )
    assert redact("token TokenB22 was refused", url) == "token *** was refused"
    assert redact("no answer from TokenA1", url) == "no answer from ***"
    mail = "mailtos://user:hunter22@smtp.example.com?to=ops@example.com"
    assert "hunter22" not in redact("login hunter22 failed at smtp.example.com", mail)


def test_apprise_logs_stay_out_of_the_log(worker, channel, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    break_cml(worker)
    run_pass()
    deliver_due()
    assert not [r for r in caplog.records if r.name.startswith("apprise")]


def test_one_run_stops_taking_notifications_after_its_budget(db, channel, receiver):
    receiver.delay = 0.3
    for i in range(3):
        w = Worker.objects.create(name=f"w{i}", region="us-east-1", instance_id=f"i-{i:017x}")
        break_cml(w)
    run_pass()
    assert deliver_due(budget=0.2).sent == 1  # the first took longer than the budget
    assert deliver_due().sent == 2  # the rest go on the next run
    assert len(receiver.received) == 3


def test_a_switched_off_channel_sends_nothing_until_switched_on(worker, channel, receiver):
    break_cml(worker)
    run_pass()
    AlertChannel.objects.update(enabled=False)
    assert deliver_due().sent == 0
    AlertChannel.objects.update(enabled=True)
    assert deliver_due().sent == 1
    assert len(receiver.received) == 1
