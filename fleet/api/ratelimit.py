"""A rate limit per API token: a fixed-window counter in the Django cache (the database cache,
shared by every process), API_RATE_LIMIT calls per API_RATE_WINDOW_SECONDS."""

import time

from django.conf import settings
from django.core.cache import cache

from fleet.api.errors import ApiError


def check(token_id: int, now: float | None = None) -> None:
    """Count one call of the token; over the limit, refuse with 429 and Retry-After (the
    seconds until the window ends)."""
    limit, window = settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_SECONDS
    now = time.time() if now is None else now
    start = int(now // window) * window
    key = f"api-rate:{token_id}:{start}"
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 5)
        count = 1
    if count > limit:
        retry = max(1, int(start + window - now + 0.999))
        raise ApiError(
            429,
            f"More than {limit} calls in {window} s with this token; retry in {retry} s.",
            headers={"Retry-After": str(retry)},
        )
