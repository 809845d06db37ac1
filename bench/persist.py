"""Benchmark persist's worker write alone: N workers with every observed field changed,
written by Django's `bulk_update` (CASE/WHEN) and by `fleet.collection.bulk_update`.

    DATABASE_URL=postgres://... python bench/persist.py --workers 300

Uses DATABASE_URL (an empty database: the benchmark creates its workers there; without it a
scratch SQLite file, where both write with Django's `bulk_update`). Each way writes 7 times; the
figures are the mean of the middle 5. The last line is key=value pairs:

    workers fields django_cpu_ms_per_worker django_wall_ms cpu_ms_per_worker wall_ms
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = [
    "status", "system_check", "instance_check", "instance_type", "ami_id", "public_ip",
    "private_ip", "tags", "cpu_percent", "memory_percent", "disk_percent", "service_status",
    "cml_version", "cml_ready", "license_state", "cml_cpu_percent", "cml_memory_used",
    "cml_memory_total", "cml_disk_used", "cml_disk_total", "nodes_running", "nodes_total",
    "allocated_cpus", "compute_hosts", "labs_count", "last_error", "consecutive_failures",
    "licence", "cml_endpoint",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch}/bench.sqlite3")
        os.environ.update(
            SECRET_KEY="bench", ALLOWED_HOSTS="localhost", DJANGO_SETTINGS_MODULE="monitor.settings"
        )
        import django

        django.setup()
        run(args.workers)


def run(count: int) -> None:
    from django.core.management import call_command
    from django.db import transaction

    from fleet.collection.bulk_update import bulk_update
    from fleet.models import Worker

    call_command("migrate", verbosity=0)
    workers = Worker.objects.bulk_create(
        Worker(name=f"w{n}", region="us-east-1", instance_id=f"i-{n:08x}") for n in range(count)
    )
    ways = {
        "django": lambda: Worker.objects.bulk_update(workers, FIELDS, batch_size=500),
        "ours": lambda: bulk_update(workers, FIELDS, batch_size=500),
    }
    figures = {"workers": count, "fields": len(FIELDS)}
    for name, write in ways.items():
        taken = []
        for round_ in range(1, 8):
            change_all(workers, round_)
            cpu, wall = time.process_time(), time.perf_counter()
            with transaction.atomic():
                write()
            taken.append((time.process_time() - cpu, time.perf_counter() - wall))
        middle = sorted(taken)[1:-1]
        prefix = "django_" if name == "django" else ""
        cpu_ms = 1000 * sum(c for c, _ in middle) / len(middle)
        figures[f"{prefix}cpu_ms_per_worker"] = f"{cpu_ms / count:.2f}"
        figures[f"{prefix}wall_ms"] = f"{1000 * sum(w for _, w in middle) / len(middle):.0f}"
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


def change_all(workers, k: int) -> None:
    """Every observed field of every worker to a new value, as a full cycle after a restart."""
    for n, w in enumerate(workers):
        w.status, w.system_check, w.instance_check = "running", "ok", "ok"
        w.instance_type, w.ami_id = "c5.2xlarge", f"ami-{k:08x}"
        w.public_ip, w.private_ip = f"10.0.{k}.{n % 250}", f"172.16.{k}.{n % 250}"
        w.tags = {"Name": f"w{n}", "round": k}
        w.cpu_percent, w.memory_percent, w.disk_percent = n % 100 + k / 10, 1.5 + k, 2.5 + k
        w.service_status, w.cml_version, w.cml_ready = "available", f"2.9.{k}", True
        w.license_state, w.cml_cpu_percent = "licensed", 3.5 + k
        w.cml_memory_used, w.cml_memory_total = 2**33 + n + k, 2**35 + k
        w.cml_disk_used, w.cml_disk_total = 2**34 + k, 2**36 + k
        w.nodes_running, w.nodes_total, w.allocated_cpus = n % 10 + k, 20 + k, 8 + k
        w.compute_hosts = [{"hostname": "cc", "round": k}]
        w.labs_count, w.last_error, w.consecutive_failures = 3 + k, f"note {k}", k
        w.licence = {"state": "ok", "round": k}
        w.cml_endpoint = f"https://10.0.{k}.{n % 250}"


if __name__ == "__main__":
    main()
