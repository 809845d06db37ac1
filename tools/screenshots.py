"""`make screenshots`: the README's screenshots, taken from the demo's simulated fleet.

Starts the simulated fleet (as `manage.py demo` does) on a throw-away SQLite database, imports
its workers and runs real collection cycles against it. So that the charts show hours rather
than the minute the script takes, the cycles are dated five minutes apart, ending now (each
cycle's samples, run and audit entries are re-dated after it, and the running workers' start
to the first cycle's date; nothing else is made up), and CML's telemetry is read once (a third
of the workers are left unused, so the list shows idle ones); one
worker is stopped and started again through the audited actions, so its page shows a gap and
two events. Then daphne serves it and headless Chromium captures the worker list, a worker
page, the runs and the audit log on a desktop (1280 px) and a phone (390 px), light and dark,
into docs/screenshots/.

    .venv/bin/python tools/screenshots.py [--cycles 66] [--out docs/screenshots]
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SPACING = timedelta(minutes=5)
PAGES = ("list", "worker", "runs", "audit")
DEVICES = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=66, help="five minutes apart (66: 5.5 h)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()

    from simulator.fleet import SimulatedFleet

    workdir = Path(tempfile.mkdtemp(prefix="fleet-screenshots-"))
    fleet = SimulatedFleet(workers=24)
    fleet.start()
    server = None
    try:
        env = {
            **os.environ,
            **fleet.environment(),
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "DEBUG": "true",
            "POLL_INTERVAL_SECONDS": str(int(SPACING.total_seconds())),
            "LABS_INTERVAL_SECONDS": "1800",
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "monitor.settings")
        import django

        django.setup()
        worker_pk = backfill(fleet, args.cycles)
        port = _free_port()
        server = _serve(port, env)
        capture(f"http://127.0.0.1:{port}", worker_pk, Path(args.out))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        fleet.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def backfill(fleet, cycles: int) -> int:
    """Migrate, import the fleet, run `cycles` collections dated SPACING apart ending now,
    stopping one worker a little before the middle and starting it an hour later. Returns
    that worker's pk."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.utils import timezone

    from fleet.actions.workers import settle, start_worker, stop_worker
    from fleet.collection.collect import collect
    from fleet.idle.pause import read_activity
    from fleet.management.commands.demo import DEMO_USERNAME, Command
    from fleet.models import ActionEntry, CollectionRun, Sample, Worker

    call_command("migrate", "--noinput", verbosity=0)
    Command()._demo_user()
    user = User.objects.get(username=DEMO_USERNAME)
    for region in sorted({instance.region for instance in fleet.instances}):
        call_command("import_workers", "--region", region, verbosity=0)
    collect()  # names, states and endpoints for every worker
    worker = Worker.objects.filter(status="running").order_by("name").first()
    for n, cml in enumerate(fleet.cml.workers()):  # a third nobody uses: the idle ones
        cml.activity = "idle" if n % 3 == 2 else None
    stop_at, start_at = cycles * 2 // 5, cycles * 2 // 5 + 12
    end = timezone.now()
    for cycle in range(cycles):
        moment = end - (cycles - 1 - cycle) * SPACING
        marks = _marks(Sample, ActionEntry, CollectionRun)
        if cycle in (stop_at, start_at):
            act = stop_worker if cycle == stop_at else start_worker
            entry = act(user, Worker.objects.get(pk=worker.pk))
            settle(entry.pk)
        fleet.drift()
        collect()
        _redate(marks, moment, Sample, ActionEntry, CollectionRun)
    # The activity section: CML's telemetry read (its seeded history is hours old, so the
    # worker stopped and started above is the one still in use), then the idle rule applied.
    Worker.objects.filter(status="running").exclude(pk=worker.pk).update(
        running_since=end - cycles * SPACING
    )
    read_activity()
    print(f"{cycles} cycles collected; {Sample.objects.count()} samples", flush=True)
    return worker.pk


def _marks(*models) -> list[int]:
    return [
        model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0 for model in models
    ]


def _redate(marks, moment, sample, entry, run) -> None:
    """Date what the cycle just wrote at `moment` (audit entries a minute before it)."""
    sample.objects.filter(pk__gt=marks[0]).update(taken_at=moment)
    entries = entry.objects.filter(pk__gt=marks[1])
    entries.update(started_at=moment - timedelta(minutes=1))
    entries.exclude(finished_at=None).update(finished_at=moment - timedelta(seconds=50))
    for found in run.objects.filter(pk__gt=marks[2]):
        took = (found.finished_at or found.started_at) - found.started_at
        run.objects.filter(pk=found.pk).update(started_at=moment, finished_at=moment + took)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(port: int, env: dict) -> subprocess.Popen:
    from fleet.supervise import daphne

    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    process = subprocess.Popen(daphne("127.0.0.1", port), cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("daphne did not start in 30 s")


def capture(base: str, worker_pk: int, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    from fleet.management.commands.demo import DEMO_PASSWORD, DEMO_USERNAME

    out.mkdir(parents=True, exist_ok=True)
    urls = {
        "list": "/",
        "worker": f"/workers/{worker_pk}/",
        "runs": "/runs/",
        "audit": "/audit/",
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for device, options in DEVICES.items():
            for scheme in ("light", "dark"):
                context = browser.new_context(**options, color_scheme=scheme)
                page = context.new_page()
                page.goto(f"{base}/accounts/login/")
                page.fill("#id_username", DEMO_USERNAME)
                page.fill("#id_password", DEMO_PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(f"{base}/")
                for name in PAGES:
                    page.goto(base + urls[name])
                    page.wait_for_timeout(500)  # the live stream keeps the network busy
                    path = out / f"{name}-{device}-{scheme}.png"
                    page.screenshot(path=str(path), full_page=True)
                    print(path, flush=True)
                context.close()
        browser.close()


if __name__ == "__main__":
    main()
