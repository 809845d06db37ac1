import os

from django.core.management.base import BaseCommand, CommandError

from fleet.supervise import Program, daphne, manage, supervise


class Command(BaseCommand):
    help = (
        "Run one daphne web process and one qcluster together on this machine (what `make run` "
        "does). On several machines, run them separately under your service manager instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, bind: str, port: int, **options):
        code = supervise(
            [
                Program("daphne", daphne(bind, port)),
                Program("qcluster", manage("qcluster")),
            ],
            dict(os.environ),
            on_started=lambda: self.stdout.write(f"Serving on http://{bind}:{port}/"),
        )
        if code:
            raise CommandError(f"a process exited with status {code}")
