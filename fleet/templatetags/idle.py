"""The idle rule and the idle controls' choices, for the worker page."""

from django import template

from fleet.actions.idle import MUTE_HOURS, SNOOZE_HOURS
from fleet.idle.rule import IdleRule

register = template.Library()


@register.simple_tag
def idle_rule() -> str:
    """The rule in one sentence, with the configured threshold and warning."""
    return IdleRule.configured().sentence()


@register.simple_tag
def snooze_hours() -> tuple[int, ...]:
    return SNOOZE_HOURS


@register.simple_tag
def mute_choices() -> list[tuple[int, str]]:
    return [(hours, f"{hours // 24} d" if hours >= 24 else f"{hours} h") for hours in MUTE_HOURS]
