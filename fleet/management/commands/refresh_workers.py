from django.core.management.base import BaseCommand, CommandError

from fleet.collection.collect import collect
from fleet.models import RunKind, RunStatus, RunTrigger, Worker


class Command(BaseCommand):
    help = "Collect some or all workers now (the same path as the schedule) and print a summary."

    def add_arguments(self, parser):
        parser.add_argument(
            "pks", nargs="*", type=int, metavar="pk", help="worker ids (default: all)"
        )
        parser.add_argument("--no-labs", action="store_true", help="skip reading labs")

    def handle(self, *args, pks: list[int], no_labs: bool, **options):
        if pks:
            known = set(Worker.objects.filter(pk__in=pks).values_list("pk", flat=True))
            unknown = sorted(set(pks) - known)
            if unknown:
                raise CommandError(f"unknown worker id(s): {', '.join(map(str, unknown))}")
        run = collect(
            pks or None,
            kind=RunKind.METRICS if no_labs else RunKind.FULL,
            trigger=RunTrigger.COMMAND,
        )
        self.stdout.write(run.summary())
        for pk, error in sorted(run.errors.items(), key=lambda item: int(item[0])):
            self.stdout.write(f"  worker {pk}: {error}")
        if run.status == RunStatus.FAILED:
            raise CommandError(f"run failed: {run.message}")
        if run.status == RunStatus.SKIPPED:
            raise CommandError(run.message)
