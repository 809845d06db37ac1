"""A span of time in words ("12 min", "1 h 20 min", "2 d 3 h"), one way for every page, alert
and rule sentence."""

from datetime import timedelta


def in_words(span: timedelta) -> str:
    """Whole minutes, hours and days; under a minute is "under a minute"."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 1:
        return "under a minute"
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"
