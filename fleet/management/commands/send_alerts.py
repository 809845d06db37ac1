from django.core.management.base import BaseCommand

from fleet.tasks import alerts


class Command(BaseCommand):
    help = (
        "Run one alert pass (open and resolve alerts from the change log) and deliver the due "
        "notifications: what the one-minute schedule does; safe beside running collectors."
    )

    def handle(self, *args, **options):
        self.stdout.write(alerts())
