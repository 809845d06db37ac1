"""The collection lock: a PostgreSQL advisory lock, or a cache key where there is none."""

import threading

import pytest
from django.core.cache import cache
from django.db import connection

from fleet.collection import locks
from fleet.collection.locks import exclusive
from tests.fleet_fixtures import terminate_backend_of

LOCK = "test-lock"


@pytest.fixture(params=[pytest.param("advisory", marks=pytest.mark.postgres), "cache"])
def lock_kind(request, monkeypatch) -> str:
    """Each kind of lock: the cache lock is exercised on PostgreSQL too, so that CI (which runs
    on PostgreSQL) covers it."""
    if request.param == "cache":
        monkeypatch.setattr(locks, "uses_advisory_locks", lambda: False)
    return request.param


def taken_elsewhere(name: str) -> bool:
    """Whether another database connection (another thread), as a cycle in another process,
    finds the lock taken now."""
    got: list[bool] = []

    def probe() -> None:
        try:
            with exclusive(name) as held:
                got.append(held)
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(10)
    return not got[0]


@pytest.mark.django_db(transaction=True)
def test_an_exception_inside_the_block_still_releases_the_lock(lock_kind):
    with pytest.raises(RuntimeError, match="the cycle broke"), exclusive(LOCK) as held:
        assert held and taken_elsewhere(LOCK)
        raise RuntimeError("the cycle broke")
    assert not taken_elsewhere(LOCK)


def test_a_cache_lock_taken_over_after_expiry_is_left_to_its_new_holder(db, monkeypatch):
    monkeypatch.setattr(locks, "uses_advisory_locks", lambda: False)
    with exclusive(LOCK) as held:
        assert held
        # Our key expires mid-cycle and another process takes the lock with its own token.
        cache.set(locks._cache_key(LOCK), "another-holder's-token")
    assert cache.get(locks._cache_key(LOCK)) == "another-holder's-token"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_advisory_lock_whose_session_was_lost_is_let_go_quietly():
    with exclusive(LOCK) as held:
        assert held
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            terminate_backend_of(cursor.fetchone()[0])
    # The lock died with its session; the next query gets a fresh connection.
    assert not taken_elsewhere(LOCK)
