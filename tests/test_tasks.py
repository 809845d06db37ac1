from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from fleet.models import Alert, Change, CollectionRun
from fleet.tasks import alerts, collect_labs, collect_metrics, ensure_schedules, prune


def test_migrate_creates_the_schedules_from_settings(db, settings):
    schedules = {s.name: s for s in Schedule.objects.all()}
    assert schedules["fleet: collect metrics"].func == "fleet.tasks.collect_metrics"
    assert schedules["fleet: collect metrics"].minutes == settings.POLL_INTERVAL_SECONDS // 60
    assert schedules["fleet: collect labs"].minutes == settings.LABS_INTERVAL_SECONDS // 60
    assert schedules["fleet: prune"].func == "fleet.tasks.prune"
    assert (schedules["fleet: alerts"].func, schedules["fleet: alerts"].minutes) == (
        "fleet.tasks.alerts",
        1,
    )
    assert all(s.schedule_type == Schedule.MINUTES and s.repeats == -1 for s in schedules.values())


def test_schedules_are_idempotent_and_follow_settings(db, settings):
    settings.POLL_INTERVAL_SECONDS = 600
    ensure_schedules()
    ensure_schedules()
    call_command("migrate", verbosity=0)  # migrate runs it again
    assert Schedule.objects.filter(name="fleet: collect metrics").count() == 1
    assert Schedule.objects.get(name="fleet: collect metrics").minutes == 10


def test_a_new_schedule_runs_as_soon_as_a_cluster_starts(db):
    Schedule.objects.all().delete()
    ensure_schedules()
    metrics = Schedule.objects.get(name="fleet: collect metrics")
    labs = Schedule.objects.get(name="fleet: collect labs")
    assert metrics.next_run <= timezone.now() < labs.next_run


def test_an_existing_schedule_keeps_its_next_run(db):
    later = timezone.now() + timedelta(minutes=4)
    Schedule.objects.filter(name="fleet: collect metrics").update(next_run=later)
    ensure_schedules()
    assert Schedule.objects.get(name="fleet: collect metrics").next_run == later


def test_the_tasks_run_the_collection(fleet_workers):
    assert "metrics run succeeded" in collect_metrics()
    assert "full run succeeded" in collect_labs()
    assert list(CollectionRun.objects.values_list("trigger", flat=True)) == ["schedule"] * 2


def test_prune_drops_old_change_log_rows_and_runs(db):
    old = timezone.now() - timedelta(days=40)
    Change.objects.create(worker_id=1, created_at=old)
    Change.objects.create(worker_id=1)
    CollectionRun.objects.create(started_at=old)
    CollectionRun.objects.create()
    Alert.objects.create(kind="collection", key="collection:fleet", message="a", resolved_at=old)
    Alert.objects.create(kind="collection", key="collection:fleet", message="b")  # open
    recent = timezone.now() - timedelta(days=2)
    Alert.objects.create(kind="collection", key="collection:fleet", message="c", resolved_at=recent)
    assert prune() == "pruned 1 change log rows, 1 runs, 1 resolved alerts and 0 samples"
    assert Change.objects.count() == 1 and CollectionRun.objects.count() == 1
    assert sorted(Alert.objects.values_list("message", flat=True)) == ["b", "c"]


def test_the_alerts_task_runs_the_pass_then_delivery(worker, channel, receiver):
    worker.status, worker.system_check = "running", "impaired"
    worker.save()
    Change.objects.create(worker_id=worker.pk, fields=["system_check"])
    assert alerts() == (
        "alerts: judged 1 workers, opened 1, resolved 0, 1 notifications queued; "
        "delivery: sent 1, retrying 0, gave up 0"
    )
    assert [m["message"] for m in receiver.received] == [
        "cml-worker-01 down: EC2 system status check failed"
    ]
    out = StringIO()
    call_command("send_alerts", stdout=out)
    assert out.getvalue().strip() == (
        "alerts: judged 1 workers, opened 0, resolved 0, 0 notifications queued; "
        "delivery: sent 0, retrying 0, gave up 0"
    )
