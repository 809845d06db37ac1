"""django-q2 entry points and the schedules that call them.

Each task is a thin call into the same code the Refresh buttons and `manage.py` use.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from django_q.tasks import async_task

from fleet.alerts.delivery import deliver_due
from fleet.alerts.evaluate import run_pass
from fleet.collection.collect import collect
from fleet.collection.locks import exclusive
from fleet.collection.shards import work_on
from fleet.models import Alert, Change, CollectionRun, RunKind, RunTrigger, Sample

CHANGE_LOG_RETENTION = timedelta(hours=6)
RUN_RETENTION = timedelta(days=30)
METRICS_SCHEDULE = "fleet: collect metrics"
AUTO_IMPORT_SCHEDULE = "fleet: auto-import"
REFRESH_ALL_TASK = "refresh all workers"
REFRESH_ALL_LOCK = "fleet-refresh-all-queue"


def collect_metrics(trigger: str = RunTrigger.SCHEDULE) -> str:
    return collect(kind=RunKind.METRICS, trigger=trigger).summary()


def collect_labs(trigger: str = RunTrigger.SCHEDULE) -> str:
    return collect(kind=RunKind.FULL, trigger=trigger).summary()


def collect_shards(run_pk: int) -> str:
    """Help a large cycle: collect its shards that no process has claimed yet."""
    return f"collected {work_on(run_pk)} shards of run {run_pk}"


def queue_refresh_all() -> bool:
    """Queue a full cycle (labs included) for the cluster, unless one is already queued or
    running; return whether this call queued it.

    django-q2's ORM broker keeps a task's queue row until the task has finished, so that row is
    the "queued or running" state, whichever cluster holds it. The check and the enqueue happen
    under a lock shared by every process, so two clicks at once cannot both queue. They also
    happen in one transaction: outside one, q2's broker closes the connection before it
    enqueues, and that would drop the (session) lock before the queue row is written.
    """
    with exclusive(REFRESH_ALL_LOCK, wait=10) as held, transaction.atomic():
        if not held or refresh_all_pending():
            return False
        async_task(
            "fleet.tasks.collect_labs", trigger=RunTrigger.REFRESH, task_name=REFRESH_ALL_TASK
        )
        return True


def refresh_all_pending() -> bool:
    """Whether a Refresh-all cycle is queued or running (its queue row is not yet acknowledged)."""
    return any(entry.name() == REFRESH_ALL_TASK for entry in OrmQ.objects.only("payload"))


def alerts() -> str:
    """The alert pass, then delivery of the due notifications (every minute)."""
    return f"{run_pass().summary()}; {deliver_due().summary()}"


def prune() -> str:
    """Keep the change log, the run history, the samples and resolved alerts bounded."""
    now = timezone.now()
    changes, _ = Change.objects.filter(created_at__lt=now - CHANGE_LOG_RETENTION).delete()
    runs, _ = CollectionRun.objects.filter(started_at__lt=now - RUN_RETENTION).delete()
    history = now - timedelta(days=settings.HISTORY_DAYS)
    samples, _ = Sample.objects.filter(taken_at__lt=history).delete()
    alerts = Alert.objects.filter(resolved_at__lt=now - RUN_RETENTION)
    alerts_count = alerts.count()
    alerts.delete()  # with their notifications
    return (
        f"pruned {changes} change log rows, {runs} runs, {alerts_count} resolved alerts and "
        f"{samples} samples"
    )


def schedules() -> dict[str, tuple[dict, timedelta]]:
    """The schedules this product needs, from settings: name → (Schedule fields, first-run
    delay). The labs cycle starts a minute after the metrics one so that the two do not meet
    on the collection lock at start-up (the second would be skipped)."""
    found = {
        METRICS_SCHEDULE: (
            {
                "func": "fleet.tasks.collect_metrics",
                "minutes": settings.POLL_INTERVAL_SECONDS // 60,
            },
            timedelta(0),
        ),
        "fleet: collect labs": (
            {"func": "fleet.tasks.collect_labs", "minutes": settings.LABS_INTERVAL_SECONDS // 60},
            timedelta(minutes=1),
        ),
        "fleet: prune": ({"func": "fleet.tasks.prune", "minutes": 60}, timedelta(minutes=5)),
        "fleet: read activity": (
            {
                "func": "fleet.idle.pause.read_activity",
                "minutes": settings.ACTIVITY_INTERVAL_SECONDS // 60,
            },
            timedelta(minutes=1),
        ),
        "fleet: idle pass": ({"func": "fleet.idle.pause.idle_pass", "minutes": 1}, timedelta(0)),
        "fleet: alerts": ({"func": "fleet.tasks.alerts", "minutes": 1}, timedelta(0)),
    }
    if settings.AUTO_IMPORT_TAGS:  # off by default
        found[AUTO_IMPORT_SCHEDULE] = (
            {
                "func": "fleet.actions.importing.auto_import",
                "minutes": settings.AUTO_IMPORT_INTERVAL_SECONDS // 60,
            },
            timedelta(minutes=2),
        )
    return found


def ensure_schedules() -> None:
    """Create or update the schedules; idempotent (names are not unique in django-q2, so we
    also remove duplicates). A new metrics schedule runs as soon as a cluster starts."""
    wanted = schedules()
    if AUTO_IMPORT_SCHEDULE not in wanted:  # turned off: remove it
        Schedule.objects.filter(name=AUTO_IMPORT_SCHEDULE).delete()
    for name, (fields, delay) in wanted.items():
        existing = Schedule.objects.filter(name=name).order_by("pk")
        for duplicate in existing[1:]:
            duplicate.delete()
        Schedule.objects.update_or_create(
            name=name,
            defaults={**fields, "schedule_type": Schedule.MINUTES, "repeats": -1},
            create_defaults={
                **fields,
                "schedule_type": Schedule.MINUTES,
                "repeats": -1,
                "next_run": timezone.now() + delay,
            },
        )


def next_metrics_cycle_at():
    """When the schedule next collects metrics (None before migrate has made the schedule)."""
    return (
        Schedule.objects.filter(name=METRICS_SCHEDULE)
        .order_by("next_run")
        .values_list("next_run", flat=True)
        .first()
    )
