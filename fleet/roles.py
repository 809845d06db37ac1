"""The three roles the pages and actions check: viewer, operator and admin."""

from django.db.models import Q

VIEW = [
    "view_worker",
    "view_lab",
    "view_collectionrun",
    "view_actionentry",
    "view_alert",
    "view_notification",
]
# Each action's own permission (fleet.models.ActionEntry.Meta): the operator runs the day to
# day ones; terminating, importing, registering and deregistering licences are the admin's.
OPERATE = [
    "start_worker",
    "stop_worker",
    "start_lab",
    "stop_lab",
    "wipe_lab",
    "download_lab",
    "snooze_worker",
    "set_auto_pause",
    "mute_worker",
]
ROLES = {
    "viewer": VIEW,
    "operator": [*VIEW, "refresh_worker", *OPERATE],
    # Every permission of the fleet app (alert channels too: their URLs hold secrets), a look
    # at django-q2's schedules and tasks and at django-axes' login attempts, and unlocking
    # (deleting an attempt). A schedule names a function the collector runs, with the AWS
    # credentials and the CML password at hand, so adding or changing one is for superusers.
    "admin": None,
}
MANAGED_APPS = ["fleet", "django_q", "axes"]


def role_permissions(Permission, codenames: list[str] | None):
    """The permissions of a role, among those of the apps the roles manage."""
    managed = Permission.objects.filter(content_type__app_label__in=MANAGED_APPS)
    if codenames is None:
        return managed.filter(
            Q(content_type__app_label="fleet")
            | Q(codename__startswith="view_")
            | Q(codename="delete_accessattempt")
        )
    return managed.filter(content_type__app_label="fleet", codename__in=codenames)


def ensure_roles(apps) -> None:
    """Create the groups and give each exactly its permissions in the managed apps (taking
    back any an older version granted); permissions of other apps are left as people set them.
    Idempotent. `apps` is the app registry (a migration's historical one, or django.apps.apps).
    """
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        wanted = set(role_permissions(Permission, codenames))
        held = set(group.permissions.filter(content_type__app_label__in=MANAGED_APPS))
        group.permissions.remove(*(held - wanted))
        group.permissions.add(*(wanted - held))
