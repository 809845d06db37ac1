from django.core.management.base import BaseCommand, CommandError

from fleet.actions.audit import UpstreamError, system_actor
from fleet.actions.importing import check_request, import_workers, parse_tags
from fleet.models import ActionOutcome


class Command(BaseCommand):
    help = (
        "Create workers for the EC2 instances of one or more regions that match tags or ids "
        "(idempotent; the same path as the Import page)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--region", action="append", required=True, dest="regions")
        parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--instance-id", action="append", default=[], dest="instance_ids")

    def handle(self, *args, regions: list[str], tag: list[str], instance_ids: list[str], **options):
        try:
            tags = parse_tags(tag)
            check_request(regions, instance_ids)
        except ValueError as error:
            raise CommandError(str(error)) from None
        try:
            entry, _ = import_workers(None, regions, tags, instance_ids, actor=system_actor())
        except UpstreamError as error:
            raise CommandError(str(error)) from None
        if entry.outcome == ActionOutcome.FAILED:
            raise CommandError(entry.message)
        self.stdout.write(entry.message)
