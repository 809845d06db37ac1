"""Benchmark one collection cycle against the simulated fleet.

    python bench/collect.py --workers 100 --latency-ms 2000 [--regions 3] [--concurrency 50]
        [--kind full|metrics] [--profile N]

The simulator (moto server + simulated CML, every CML call delayed by --latency-ms) runs in its
own process so its CPU is not counted. The cycle runs in this process against a fresh SQLite
database (or DATABASE_URL). The last line is key=value pairs:

    workers latency_ms concurrency cycle_s ideal_s ratio db_queries aws_calls cpu_ms_per_worker
    shards aws_s observe_s

observe_s is the wall-clock seconds of the observation (AWS and CML side by side), aws_s of its
AWS part, each summed over shards: the rest of the cycle is derive and persist.

With --shards S the cycle is split into shards (per region, ceil(workers / S) workers at most)
and S - 1 single-worker qcluster processes take shards beside this one; cpu_ms_per_worker then
counts this process only. A cycle of more than COLLECT_SHARD_SIZE (500) workers is sharded
anyway, and without --shards this process collects every shard itself.

ideal_s = ceil(workers / concurrency) x the calls a worker makes in sequence x latency. A worker's
CML reads go out in CML_CALLS_IN_SEQUENCE rounds (system_information with authentication, then
health, stats, licensing and labs together).
"""

import argparse
import cProfile
import json
import math
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CML_CALLS_IN_SEQUENCE = 2
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--regions", type=int, default=3, choices=range(1, len(REGIONS) + 1))
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--kind", choices=["metrics", "full"], default="full")
    parser.add_argument(
        "--profile", type=int, metavar="N", default=0, help="print the warm cycle's N costliest"
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=0,
        help="split the cycle into shards of ceil(workers / S) per region, collected by this "
        "process and S - 1 qcluster processes beside it (PostgreSQL only)",
    )
    args = parser.parse_args()
    if args.shards > 1 and not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        parser.error(
            "--shards needs DATABASE_URL=postgres://...: shards are claimed with row locks"
        )

    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--workers",
            str(args.workers),
            "--regions",
            ",".join(REGIONS[: args.regions]),
            "--stopped",
            "0",
            "--latency-ms",
            str(args.latency_ms),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        started = json.loads(simulator.stdout.readline())
        with tempfile.TemporaryDirectory() as scratch:
            run_cycle(args, started, Path(scratch))
    finally:
        simulator.stdin.close()
        simulator.wait(timeout=30)


def run_cycle(args: argparse.Namespace, started: dict, scratch: Path) -> None:
    os.environ.update(started["environment"])
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'bench.sqlite3'}")
    os.environ.update(
        {
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": "localhost",
            "COLLECT_CONCURRENCY": str(args.concurrency),
            # No timeout may cut a slow simulated call short: we measure, not fail.
            "CML_REQUEST_TIMEOUT_SECONDS": str(max(10, 3 * args.latency_ms // 1000 + 5)),
            "CML_WORKER_DEADLINE_SECONDS": "3600",
            "DJANGO_SETTINGS_MODULE": "monitor.settings",
        }
    )
    if args.shards:
        os.environ["COLLECT_SHARD_SIZE"] = str(max(1, math.ceil(args.workers / args.shards)))
    import django

    django.setup()
    from django.core.management import call_command

    from fleet.collection.collect import collect
    from fleet.models import Lab, Worker

    call_command("migrate", verbosity=0)
    Worker.objects.bulk_create(
        Worker(region=i["region"], instance_id=i["instance_id"], name=i["name"])
        for i in started["instances"]
    )

    helpers = start_helpers(args.shards - 1) if args.shards > 1 else []
    try:
        measure_both(args, collect, Worker, Lab)
    finally:
        for helper in helpers:
            helper.terminate()
            helper.wait(timeout=30)


def start_helpers(count: int) -> list[subprocess.Popen]:
    """`count` single-worker qclusters on the benchmark's database, to take shards; the
    product's schedules are removed first, so that they run nothing else."""
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    env = {**os.environ, "Q_WORKERS": "1"}
    helpers = [
        subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    time.sleep(5)  # the clusters start their worker processes and poll the queue
    return helpers


def measure_both(args: argparse.Namespace, collect, Worker, Lab) -> None:  # noqa: N803
    # Cycle 1 runs cold (imports, boto3 clients, CML tokens, and no worker yet known to run).
    # Cycle 2 is what a long-lived qcluster does every interval; we forget what cycle 1 saved
    # first, so it too must write every worker and every lab: the worst case for the database.
    # Only EC2's state and the CML address are kept, as every cycle after the first has them.
    cold = measure(collect, args)
    print("cold:", cold["summary"], format_figures(args, cold))
    Worker.objects.update(
        service_status="unknown",
        cpu_percent=None,
        cml_version="",
        labs_count=None,
    )
    Lab.objects.all().delete()
    warm = measure(collect, args)
    print("warm:", warm["summary"])
    print(format_figures(args, warm))


class PhaseTimer:
    """Wall-clock seconds spent in AwsReader.observe and in the whole observation (AWS and CML
    side by side), by wrapping them."""

    def __init__(self) -> None:
        from fleet.collection import collect
        from fleet.collection.sources.aws import AwsReader

        self.seconds = {"aws": 0.0, "observe": 0.0}
        AwsReader.observe = self.timed("aws", AwsReader.observe)
        collect.observe = self.timed("observe", collect.observe)

    def timed(self, phase: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - started

        return wrapper

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {"aws": 0.0, "observe": 0.0}
        return taken


def measure(collect, args: argparse.Namespace) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if not hasattr(measure, "phases"):
        measure.phases = PhaseTimer()

    profile = cProfile.Profile() if args.profile and measure.warm else None
    measure.warm = True
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        if profile:
            profile.enable()
        run = collect(kind=args.kind)
        if profile:
            profile.disable()
    if profile:
        pstats.Stats(profile, stream=sys.stderr).sort_stats(
            os.environ.get("BENCH_PROFILE_SORT", "tottime")
        ).print_stats(args.profile)
    return {
        "shards": run.shards.count(),
        "cycle_s": time.perf_counter() - wall_before,
        "cpu_ms": (time.process_time() - cpu_before) * 1000,
        "db_queries": len(queries),
        "aws_calls": run.aws_calls,
        "summary": run.summary(),
        "phases": measure.phases.take(),
    }


measure.warm = False  # the first (cold) cycle is not profiled


def format_figures(args: argparse.Namespace, measured: dict) -> str:
    ideal_s = (
        math.ceil(args.workers / args.concurrency) * CML_CALLS_IN_SEQUENCE * args.latency_ms / 1000
    )
    cycle_s = measured["cycle_s"]
    figures = {
        "workers": args.workers,
        "latency_ms": args.latency_ms,
        "concurrency": args.concurrency,
        "cycle_s": f"{cycle_s:.2f}",
        "ideal_s": f"{ideal_s:.2f}",
        "ratio": f"{cycle_s / ideal_s:.2f}" if ideal_s else "n/a",
        "db_queries": measured["db_queries"],
        "aws_calls": measured["aws_calls"],
        "cpu_ms_per_worker": f"{measured['cpu_ms'] / args.workers:.2f}",
        "shards": measured["shards"],
        "aws_s": f"{measured['phases']['aws']:.2f}",
        "observe_s": f"{measured['phases']['observe']:.2f}",
    }
    return " ".join(f"{key}={value}" for key, value in figures.items())


if __name__ == "__main__":
    main()
