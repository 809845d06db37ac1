"""CML tokens shared through the database cache are encrypted at rest."""

import base64

from django.core.cache import cache
from django.db import connection

from fleet.collection.collect import collect
from fleet.collection.token_cache import CACHE_KEY, load_tokens
from tests.fleet_fixtures import cml_of, running


def raw_cache_row(key: str) -> str:
    """The cache table's stored value for `key`, as anyone reading the database sees it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM fleet_cache WHERE cache_key LIKE %s", [f"%{key}"])
        return cursor.fetchone()[0]


def test_no_token_text_is_stored_in_the_cache_table(fleet_workers, fleet_settings):
    up = running(fleet_settings, fleet_workers)
    collect()
    issued = {token for worker in up for token in cml_of(fleet_settings, worker)._tokens}
    assert len(issued) == len(up)
    raw = raw_cache_row(CACHE_KEY)
    decoded = base64.b64decode(raw)  # the cache's own encoding (a base64 pickle)
    for token in issued:
        assert token not in raw and token.encode() not in decoded
    assert set(load_tokens().values()) == issued  # and the collection reads them back


def test_tokens_that_no_longer_decrypt_are_treated_as_absent(
    fleet_workers, fleet_settings, settings
):
    worker = running(fleet_settings, fleet_workers)[0]
    sim = cml_of(fleet_settings, worker)
    collect([worker.pk])
    before = sim.authentications
    settings.SECRET_KEY = "a-rotated-secret-key"
    assert load_tokens() == {}
    collect([worker.pk])
    worker.refresh_from_db()
    assert worker.service_status == "available" and worker.last_error == ""
    assert sim.authentications == before + 1  # signed in again, once
    assert load_tokens()  # and saved under the new key


def test_plain_text_tokens_left_by_an_older_release_are_ignored(db):
    cache.set(CACHE_KEY, {"https://203.0.113.7": "plain-token"})
    assert load_tokens() == {}
