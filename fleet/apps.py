from django.apps import AppConfig
from django.db.models.signals import post_migrate


class FleetConfig(AppConfig):
    name = "fleet"
    verbose_name = "CML fleet"

    def ready(self) -> None:
        post_migrate.connect(_ensure_schedules, sender=self)


def _ensure_schedules(**kwargs) -> None:
    """After every migrate (and every test database flush): schedules and roles exist."""
    from django.apps import apps

    from fleet.roles import ensure_roles
    from fleet.tasks import ensure_schedules

    ensure_schedules()
    ensure_roles(apps)
