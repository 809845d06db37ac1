"""Delivering the outbox through Apprise: each due notification is locked (skipping rows another
process holds), sent, and marked sent in its own short transaction, so a notification goes out
once however many collectors run; a failure is retried with exponential backoff and the last
error kept, then given up. A channel's URL holds secrets: it is never logged or stored in an
error (Apprise's own log is captured and scrubbed, see `send`)."""

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, unquote, urlsplit

import apprise
from django.db import transaction
from django.utils import timezone

from fleet.models import AlertKind, Notification, NotificationEvent, NotificationStatus

log = logging.getLogger("fleet.alerts")

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(minutes=30)
BATCH = 100
# One run stops taking notifications after this long, so a slow or unreachable service cannot
# hold a django-q2 worker (the collection's too) past the next minute's run.
BUDGET_SECONDS = 45.0
TITLE_PREFIX = "CML Fleet"


@dataclass
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def summary(self) -> str:
        return f"delivery: sent {self.sent}, retrying {self.retrying}, gave up {self.failed}"


def backoff(attempts: int) -> timedelta:
    """The wait after the n-th failed attempt: 1, 2, 4 ... minutes, at most LONGEST_RETRY."""
    return min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_RETRY)


def redact(text: str, url: str) -> str:
    """Text with every secret-looking part of the URL (user, password, host, path parts, query
    values, the URL itself) replaced by ***: an Apprise error may echo any of them (in
    slack://TokenA/TokenB/TokenC the "host" is a token)."""
    parts = urlsplit(url)
    pieces = {url, parts.netloc, parts.hostname or "", parts.username or "", parts.password or ""}
    pieces.update(unquote(p) for p in parts.path.split("/"))
    pieces.update(p for p in parts.path.split("/"))
    pieces.update(value for _, value in parse_qsl(parts.query))
    for piece in sorted((p for p in pieces if len(p) >= 4), key=len, reverse=True):
        text = text.replace(piece, "***")
    return text


def send(url: str, title: str, body: str) -> str:
    """Send one message through Apprise; return "" on success, else why not (URL removed).
    Apprise's log lines (which can name the target) are captured here; settings.LOGGING keeps
    the "apprise" logger from printing them."""
    notifier = apprise.Apprise(asset=apprise.AppriseAsset(storage_mode="memory"))
    with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
        if not url or not notifier.add(url):
            return "Apprise does not accept this channel's URL (or it could not be decrypted)"
        try:
            ok = notifier.notify(body=body, title=title)
        except Exception as error:  # a plugin's bug must not wedge the outbox: retried instead
            return redact(f"Apprise failed: {type(error).__name__}: {error}", url)[:1000]
    if ok:
        return ""
    lines = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    why = "; ".join(dict.fromkeys(lines)) or "Apprise reported a failure"
    return redact(re.sub(r"\s+", " ", why), url)[:1000]


def message_of(notification: Notification) -> tuple[str, str]:
    """Title and body of a notification."""
    alert = notification.alert
    kind = AlertKind(alert.kind).label
    if notification.event == NotificationEvent.RESOLVED:
        return f"{TITLE_PREFIX}: resolved: {kind}", alert.recovery_message
    return f"{TITLE_PREFIX}: {kind}", alert.message


def deliver_due(
    now: datetime | None = None, limit: int = BATCH, budget: float = BUDGET_SECONDS
) -> DeliveryResult:
    """Send the pending notifications that are due, one transaction each: at most `limit`, and
    none started after `budget` seconds (the rest wait for the next run)."""
    result = DeliveryResult()
    stop_at = time.monotonic() + budget
    for _ in range(limit):
        if time.monotonic() >= stop_at or not deliver_one(now or timezone.now(), result):
            break
    if result.sent or result.retrying or result.failed:
        log.info("%s", result.summary())
    return result


def deliver_one(now: datetime, result: DeliveryResult) -> bool:
    """Lock one due notification (skipping those another process holds), send it, record the
    outcome, commit. False when none is due."""
    with transaction.atomic():
        notification = (
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status=NotificationStatus.PENDING,
                next_attempt_at__lte=now,
                channel__enabled=True,  # a switched-off channel's rows wait for it
            )
            .order_by("next_attempt_at", "id")
            .first()
        )
        if notification is None:
            return False
        channel = notification.channel
        title, body = message_of(notification)
        error = send(channel.url, title, body)
        notification.attempts += 1
        if not error:
            notification.status = NotificationStatus.SENT
            notification.sent_at = timezone.now()
            notification.last_error = ""
            result.sent += 1
        else:
            notification.last_error = error
            if notification.attempts >= MAX_ATTEMPTS:
                notification.status = NotificationStatus.FAILED
                result.failed += 1
            else:
                notification.next_attempt_at = now + backoff(notification.attempts)
                result.retrying += 1
            log.warning(
                "alert notification %s to channel %r, attempt %s: %s",
                notification.pk,
                channel.name,
                notification.attempts,
                error,
            )
        notification.save(
            update_fields=["status", "attempts", "next_attempt_at", "last_error", "sent_at"]
        )
    return True


def send_test(channel) -> str:
    """Send a test message to a channel now (the admin's button); "" on success, else why not."""
    return send(
        channel.url,
        f"{TITLE_PREFIX}: test",
        f"A test from CML Fleet Monitor to the channel {channel.name!r}: it works.",
    )
