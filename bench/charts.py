"""Chart rendering time over a large history: 1,000 workers with a week of five-minute cycles
(2,016,000 samples), on the database DATABASE_URL names (it is filled once, then reused).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fleet_charts_bench python bench/charts.py
"""

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SECRET_KEY", "bench-only")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitor.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.template.loader import render_to_string  # noqa: E402
from django.utils import timezone  # noqa: E402

from fleet.live.history import fleet_charts, worker_charts  # noqa: E402
from fleet.models import Sample, Worker  # noqa: E402

WORKERS, PER_DAY, DAYS = 1000, 288, 7


def fill() -> None:
    workers = Worker.objects.bulk_create(
        Worker(region="us-east-1", instance_id=f"i-{n:08x}", name=f"w{n}") for n in range(WORKERS)
    )
    now = timezone.now()
    for step in range(DAYS * PER_DAY):
        taken_at = now - step * timedelta(minutes=5)
        Sample.objects.bulk_create(
            [
                Sample(
                    worker=w,
                    taken_at=taken_at,
                    cpu_percent=(step * 7 + w.pk) % 100,
                    memory_percent=50,
                )
                for w in workers
            ],
            batch_size=2000,
        )


def best_of(runs: int, render) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(runs):
        started = time.perf_counter()
        size = len(render())
        best = min(best, time.perf_counter() - started)
    return best, size


def main() -> None:
    call_command("migrate", "--noinput", verbosity=0)
    if not Worker.objects.exists():
        fill()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE fleet_sample")
    print(f"{Sample.objects.count():,} samples")
    worker = Worker.objects.order_by("pk").first()
    for window in ("1h", "24h", "7d"):
        seconds, size = best_of(
            3,
            lambda window=window: render_to_string(
                "fleet/partials/fleet_chart.html", fleet_charts(window)
            ),
        )
        print(f"fleet chart {window}: {seconds * 1000:.0f} ms, {size:,} bytes")
    for window in ("1h", "24h", "7d"):
        context = {"worker": worker, "fragment": f"history-{window}"}
        seconds, size = best_of(
            3,
            lambda window=window, context=context: render_to_string(
                "fleet/partials/worker_history.html", {**context, **worker_charts(worker, window)}
            ),
        )
        print(f"worker charts {window}: {seconds * 1000:.0f} ms, {size:,} bytes")


if __name__ == "__main__":
    main()
