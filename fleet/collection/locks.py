"""One collection at a time across every process and machine that shares the database."""

import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache import cache
from django.db import Error, connection

# Where no advisory locks exist (SQLite), a cache key stands in; it expires so that a process
# killed mid-cycle cannot block collection for ever.
CACHE_LOCK_SECONDS = 15 * 60
RETRY_SECONDS = 0.5


@contextmanager
def exclusive(name: str, wait: float = 0) -> Iterator[bool]:
    """Take the lock `name`, waiting up to `wait` seconds for its holder to finish; yield
    whether we hold it. The lock is released however the block ends."""
    deadline = time.monotonic() + wait
    while True:
        held = _try_acquire(name)
        if held or time.monotonic() >= deadline:
            break
        time.sleep(RETRY_SECONDS)
    try:
        yield bool(held)
    finally:
        if held:
            _release(name, held)


def uses_advisory_locks() -> bool:
    """PostgreSQL session advisory locks; elsewhere the shared cache holds the lock."""
    return connection.vendor == "postgresql"


def _try_acquire(name: str) -> str | None:
    """A token for the lock if we got it, else None."""
    if uses_advisory_locks():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [_key(name)])
            return "advisory" if cursor.fetchone()[0] else None
    token = uuid.uuid4().hex
    return token if cache.add(_cache_key(name), token, timeout=CACHE_LOCK_SECONDS) else None


def _release(name: str, token: str) -> None:
    if uses_advisory_locks():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_key(name)])
        except Error:
            # The session is broken (a lost connection): ending it ends its locks too.
            connection.close()
    # A cache lock that expired may have been taken by another holder since: leave theirs.
    elif cache.get(_cache_key(name)) == token:
        cache.delete(_cache_key(name))


def _cache_key(name: str) -> str:
    return f"lock:{name}"


def _key(name: str) -> int:
    return zlib.crc32(name.encode())
