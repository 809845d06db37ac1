"""A fragment's identity on the page, named by the same rule the live feed uses for its events."""

from django import template
from django.utils.html import format_html

from fleet.live.fragments import event_name

register = template.Library()


@register.simple_tag
def fragment_attrs(worker, fragment: str, oob: bool = False) -> str:
    """`id` and swap attributes of one worker fragment (`oob`: swap out of band, as in the
    Refresh button's answer and the live `fragments` event, which find it by this id)."""
    name = event_name(worker.pk, fragment)
    attrs = format_html('id="{}" hx-swap="outerHTML"', name)
    return format_html('{} hx-swap-oob="true"', attrs) if oob else attrs
