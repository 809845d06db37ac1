"""Open streams hold no database connection: a server restart reconnecting every page must not
run PostgreSQL out of connections."""

import asyncio

import httpx
import pytest
from django.db import connection

from tests.browser_fixtures import free_port, start_daphne, stop
from tests.live_fixtures import opened, session_of

STREAMS = 150  # more than PostgreSQL's default max_connections (100) allows at once


def _connections_to_this_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_open_streams_hold_no_database_connection(viewer, worker):
    session = session_of(viewer)
    port = free_port()
    server = start_daphne(port)
    before = _connections_to_this_database()

    async def open_streams_and_count() -> int:
        limits = httpx.Limits(max_connections=None)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
        ) as http:
            streams = [
                http.stream("GET", f"/events/?workers={worker.pk}", cookies={"sessionid": session})
                for _ in range(STREAMS)
            ]
            responses = await asyncio.gather(*(s.__aenter__() for s in streams))
            for response in responses:
                assert response.status_code == 200
                text = ""
                async for chunk in response.aiter_text():
                    text += chunk
                    if opened(text):
                        break
            count = await asyncio.to_thread(_connections_to_this_database)
            for stream in streams:
                await stream.__aexit__(None, None, None)
            return count

    try:
        during = asyncio.run(open_streams_and_count())
    finally:
        stop(server)
    # The feed's thread and its LISTEN connection; nothing per stream.
    assert during - before <= 3, (before, during)
