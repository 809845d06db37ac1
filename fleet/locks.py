"""One collection at a time across every process and machine that shares the database."""

import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache
from django.db import connection

# Where no advisory locks exist (SQLite), a cache key stands in; it expires so that a process
# killed mid-cycle cannot block collection for ever.
CACHE_LOCK_SECONDS = 15 * 60


@contextmanager
def exclusive(name: str) -> Iterator[bool]:
    """Try to take the lock `name` without waiting; yield whether we hold it."""
    if connection.vendor == "postgresql":
        key = zlib.crc32(name.encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            held = cursor.fetchone()[0]
        try:
            yield held
        finally:
            if held:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return

    cache_key = f"lock:{name}"
    token = uuid.uuid4().hex
    held = cache.add(cache_key, token, timeout=CACHE_LOCK_SECONDS)
    try:
        yield held
    finally:
        if held and cache.get(cache_key) == token:
            cache.delete(cache_key)
