from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from fleet.collection.collect import aws_reader
from fleet.models import ChangeKind, Worker
from fleet.models.changes import record_changes
from fleet.models.workers import INSTANCE_ID_RE


class Command(BaseCommand):
    help = "Create workers for the EC2 instances of a region that match tags or ids (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--region", required=True)
        parser.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
        parser.add_argument("--instance-id", action="append", default=[], dest="instance_ids")

    def handle(self, *args, region: str, tag: list[str], instance_ids: list[str], **options):
        if region not in settings.AWS_REGIONS:
            raise CommandError(
                f"region {region!r} is not in AWS_REGIONS ({', '.join(settings.AWS_REGIONS)})"
            )
        tags = {}
        for item in tag:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise CommandError(f"--tag {item!r}: use KEY=VALUE")
            tags[key] = value
        for instance_id in instance_ids:
            if not INSTANCE_ID_RE.match(instance_id):
                raise CommandError(f"--instance-id {instance_id!r} is not an EC2 instance id")

        reader = aws_reader()
        try:
            found = reader.find_instances(
                region, tags=tags or None, instance_ids=instance_ids or None
            )
        except Exception as error:  # noqa: BLE001 - any AWS failure is reported, not traced
            raise CommandError(f"AWS {region}: {error}") from error

        known = set(
            Worker.objects.filter(
                region=region, instance_id__in=[i.instance_id for i in found]
            ).values_list("instance_id", flat=True)
        )
        new = [
            Worker(region=region, instance_id=i.instance_id, name=i.name)
            for i in found
            if i.instance_id not in known
        ]
        with transaction.atomic():
            created = Worker.objects.bulk_create(new)
            if created and created[0].pk is None:  # backends that return no ids
                created = list(
                    Worker.objects.filter(
                        region=region, instance_id__in=[w.instance_id for w in new]
                    )
                )
            record_changes((w.pk, ChangeKind.CREATED, []) for w in created)
        self.stdout.write(
            f"{region}: found {len(found)} instance(s), imported {len(created)} new, "
            f"{len(known)} already known"
        )
