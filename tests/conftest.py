import os

import pytest
from django.db import connection


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `postgres` skip on SQLite, except under CI, where a skip would hide a gap."""
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        message = "needs PostgreSQL (set DATABASE_URL=postgres://...)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}: CI must run every PostgreSQL test")
        pytest.skip(message)
