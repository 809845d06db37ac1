from datetime import timedelta

from django.utils import timezone

from fleet.collection.collect import collect
from fleet.live.history import attach_history, chart
from fleet.models import Sample, Worker
from fleet.tasks import prune


def test_each_cycle_writes_one_sample_per_worker(fleet_workers):
    collect()
    collect()
    assert Sample.objects.count() == 2 * len(fleet_workers)
    running = Worker.objects.filter(status="running").first()
    sample = Sample.objects.filter(worker=running).last()
    assert sample.cpu_percent == running.cpu_percent
    assert sample.nodes_running == running.nodes_running


def test_history_is_attached_in_one_query(db, django_assert_num_queries):
    workers = Worker.objects.bulk_create(
        Worker(region="us-east-1", instance_id=f"i-{n:08x}") for n in range(20)
    )
    now = timezone.now()
    Sample.objects.bulk_create(
        Sample(worker=w, taken_at=now - timedelta(hours=h), cpu_percent=h)
        for w in workers
        for h in (1, 2, 30)
    )
    with django_assert_num_queries(1):
        attach_history(workers)
    assert [s.cpu_percent for s in workers[0].history] == [2, 1]  # oldest first, 30 h is out


def test_a_chart_places_points_by_time_and_value():
    now = timezone.now()
    samples = [
        Sample(taken_at=now - timedelta(hours=24), cpu_percent=0),
        Sample(taken_at=now - timedelta(hours=12), cpu_percent=None),
        Sample(taken_at=now, cpu_percent=50),
    ]
    drawn = chart(samples, "cpu_percent", width=100, height=20, now=now)
    assert drawn.points == "0.0,20.0 100.0,10.0"
    assert (drawn.last, drawn.low, drawn.high) == (50, 0, 50)
    assert chart([], "cpu_percent").points == ""


def test_the_list_and_worker_page_draw_sparklines(client, viewer, worker):
    Sample.objects.create(worker=worker, taken_at=timezone.now(), cpu_percent=42)
    client.force_login(viewer)
    assert 'aria-label="CPU over 24 hours: last 42%' in client.get("/").content.decode()
    page = client.get(f"/workers/{worker.pk}/").content.decode()
    assert 'aria-label="CPU % over the last hour: last 42%' in page


def test_samples_older_than_history_days_are_pruned(worker, settings):
    settings.HISTORY_DAYS = 7
    now = timezone.now()
    Sample.objects.create(worker=worker, taken_at=now - timedelta(days=8))
    Sample.objects.create(worker=worker, taken_at=now - timedelta(days=6))
    assert prune().endswith("and 1 samples")
    assert Sample.objects.count() == 1
