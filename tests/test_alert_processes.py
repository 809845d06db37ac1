"""No duplicates with two collectors: two real OS processes run the alert pass and delivery at
the same moment against one PostgreSQL database, and the receiver gets every notification
exactly once (both processes do part of the sending)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import transaction

from fleet.models import Alert, Notification, NotificationStatus, Worker
from fleet.models.changes import record_changes
from tests.browser_fixtures import database_url

ROOT = Path(__file__).resolve().parent.parent
WORKERS = 30
# Each process: set up Django, wait for the common start, then run the one-minute task 3 times.
COLLECTOR = """
import json, os, sys, time
import django
django.setup()
from fleet.alerts.delivery import deliver_due
from fleet.alerts.evaluate import run_pass
time.sleep(max(0.0, float(os.environ["START_AT"]) - time.time()))
changed = sent = 0
for _ in range(3):
    result = run_pass()
    changed += len(result.opened) + len(result.resolved)
    sent += deliver_due().sent
print(json.dumps({"changed": changed, "sent": sent}))
"""


def two_collectors() -> list[dict]:
    """Run COLLECTOR in two processes that start together; return what each did."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "monitor.settings",
        "DATABASE_URL": database_url(),
        "START_AT": str(time.time() + 4),
        "LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", COLLECTOR],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def set_cml(workers: list[Worker], status: str, failures: int) -> None:
    with transaction.atomic():
        for w in workers:
            w.service_status, w.consecutive_failures = status, failures
        Worker.objects.bulk_update(workers, ["service_status", "consecutive_failures"])
        record_changes((w.pk, "updated", ["service_status"]) for w in workers)


@pytest.mark.postgres
def test_two_collector_processes_send_each_notification_once(transactional_db, channel, receiver):
    receiver.delay = 0.1  # senders overlap: each answer takes a while
    workers = Worker.objects.bulk_create(
        Worker(
            name=f"cml-worker-{i:02}",
            region="us-east-1",
            instance_id=f"i-{i:017x}",
            status="running",
            service_status="available",
        )
        for i in range(WORKERS)
    )
    set_cml(workers, "unavailable", 3)

    opened = two_collectors()
    assert sum(r["changed"] for r in opened) == WORKERS  # opened once between them
    assert all(r["sent"] > 0 for r in opened), opened  # both really sent
    assert sum(r["sent"] for r in opened) == WORKERS
    names = sorted(m["message"].split(":")[0] for m in receiver.received)
    assert names == sorted(w.name for w in workers)  # each exactly once
    assert Alert.objects.count() == WORKERS

    set_cml(workers, "available", 0)
    resolved = two_collectors()
    assert sum(r["changed"] for r in resolved) == WORKERS
    recoveries = [m["message"] for m in receiver.received[WORKERS:]]
    assert len(recoveries) == WORKERS == len(set(recoveries))
    assert all("CML available again after" in m for m in recoveries)
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert Notification.objects.count() == 2 * WORKERS
