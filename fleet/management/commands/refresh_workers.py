from django.core.management.base import BaseCommand, CommandError

from fleet.actions.audit import system_actor
from fleet.actions.refresh import refresh_now
from fleet.models import RunStatus, Worker


class Command(BaseCommand):
    help = (
        "Collect some or all workers now (the same path as the schedule) and print a summary; "
        "audited as the system, run by this OS account."
    )

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
        _, run = refresh_now(None, pks, labs=not no_labs, actor=system_actor())
        self.stdout.write(run.summary())
        for pk, error in sorted(run.errors.items(), key=lambda item: int(item[0])):
            self.stdout.write(f"  worker {pk}: {error}")
        if run.status == RunStatus.FAILED:
            raise CommandError(f"run failed: {run.message}")
        if run.status == RunStatus.SKIPPED:
            raise CommandError(run.message)
