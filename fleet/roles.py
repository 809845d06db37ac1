"""The three roles the pages and actions check: viewer, operator and admin."""

VIEW = ["view_worker", "view_lab", "view_collectionrun", "view_actionentry"]
# Each action's own permission (fleet.models.ActionEntry.Meta): the operator runs the day to
# day ones; terminating, importing, registering and deregistering licences are the admin's
# (who has every permission).
OPERATE = ["start_worker", "stop_worker", "start_lab", "stop_lab", "wipe_lab", "download_lab"]
ROLES = {
    "viewer": VIEW,
    "operator": [*VIEW, "refresh_worker", *OPERATE],
    "admin": None,  # every permission of the fleet app and of django-q2's task pages
}


def ensure_roles(apps) -> None:
    """Create the groups and grant their permissions; idempotent. `apps` is the app registry
    (a migration's historical one, or django.apps.apps)."""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(content_type__app_label__in=["fleet", "django_q"])
        if codenames is not None:
            perms = perms.filter(content_type__app_label="fleet", codename__in=codenames)
        group.permissions.add(*perms)
