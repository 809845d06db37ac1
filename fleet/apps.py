from django.apps import AppConfig
from django.db.models.signals import post_migrate


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "CML fleet"

    def ready(self) -> None:
        post_migrate.connect(_ensure_schedules, sender=self)


def _ensure_schedules(**kwargs) -> None:
    from fleet.tasks import ensure_schedules

    ensure_schedules()
