"""Which action buttons a user's page shows: fragments are the same for everyone (the live feed
renders each once), so the page body lists the actions the user may take in `data-can`, and CSS
shows the buttons marked `needs-<permission>` only under `[data-can~=<permission>]`."""

from django import template

from fleet.models import ActionEntry

register = template.Library()

ACTION_PERMISSIONS = [codename for codename, _ in ActionEntry._meta.permissions]


@register.simple_tag
def action_permissions(user) -> str:
    """`start_worker stop_worker ...`: the actions `user` may take."""
    return " ".join(name for name in ACTION_PERMISSIONS if user.has_perm(f"fleet.{name}"))
