import os
import socket
import subprocess
import threading

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from fleet.supervise import Program, daphne, manage, supervise

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "cml-fleet-demo"


class Command(BaseCommand):
    help = (
        "Run the whole product against a simulated fleet (moto for EC2/CloudWatch, a simulated "
        "CML server): migrate, seed, start daphne and qcluster. Ctrl-C stops everything."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=24)
        parser.add_argument("--drift-seconds", type=float, default=20.0)

    def handle(self, *args, port: int, workers: int, drift_seconds: float, **options):
        _refuse_unless_sqlite()
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        _check_port_free(port)
        try:  # the simulator is an optional extra: production installs lack moto
            from simulator.fleet import SimulatedFleet
        except ImportError as error:
            raise CommandError(
                f"The demo needs the simulated fleet ({error}): pip install '.[simulator]'"
            ) from error
        fleet = SimulatedFleet(workers=workers)
        fleet.start()
        stop_drift = threading.Event()
        try:
            env = {
                **os.environ,
                **fleet.environment(),
                "DEBUG": "true",
                "POLL_INTERVAL_SECONDS": "60",
                "LABS_INTERVAL_SECONDS": "120",
                # Idle workers pause themselves within minutes, so the demo shows it happen.
                "ACTIVITY_INTERVAL_SECONDS": "120",
                "IDLE_THRESHOLD_MINUTES": "15",
                "IDLE_WARNING_MINUTES": "3",
                "AUTO_PAUSE_DEFAULT": "true",
            }
            # migrate with the demo's settings: it writes the schedules from the intervals.
            subprocess.run(manage("migrate", "--noinput", "-v0"), env=env, check=True)
            self._demo_user()
            for region in sorted({instance.region for instance in fleet.instances}):
                subprocess.run(manage("import_workers", "--region", region), env=env, check=True)
            threading.Thread(
                target=fleet.run_drift, args=(drift_seconds, stop_drift), daemon=True
            ).start()

            def announce():
                self.stdout.write(
                    self.style.SUCCESS(
                        f"\nCML Fleet Monitor demo: http://127.0.0.1:{port}/\n"
                        f"Log in as {DEMO_USERNAME} / {DEMO_PASSWORD}. Ctrl-C stops everything.\n"
                    )
                )

            code = supervise(
                [
                    Program("daphne", daphne("127.0.0.1", port)),
                    Program("qcluster", manage("qcluster")),
                ],
                env,
                on_started=announce,
            )
        finally:
            stop_drift.set()
            fleet.stop()
        self.stdout.write("Demo stopped.")
        if code:
            raise CommandError(f"a process exited with status {code}")

    def _demo_user(self) -> None:
        user, _ = User.objects.get_or_create(username=DEMO_USERNAME)
        user.is_staff = user.is_superuser = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        user.groups.add(Group.objects.get(name="admin"))


def _refuse_unless_sqlite() -> None:
    """The demo makes a superuser whose password is printed in the README: never in a real
    database."""
    vendor = connection.vendor
    if vendor != "sqlite":
        raise CommandError(
            f"manage.py demo creates the superuser {DEMO_USERNAME!r} with a published password, "
            f"so it runs only on SQLite, and DATABASE_URL names a {vendor} database. "
            "Unset DATABASE_URL (or point it at a sqlite:/// file) to run the demo."
        )


def _check_port_free(port: int) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise CommandError(f"port {port} is in use; choose another with --port") from None
