import os

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from fleet.models import Worker

pytest_plugins = [
    "tests.fleet_fixtures",
    "tests.browser_fixtures",
    "tests.live_fixtures",
    "tests.action_fixtures",
    "tests.alert_fixtures",
    "tests.api_fixtures",
    "tests.oidc_fixtures",
]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `postgres` skip on SQLite, except under CI, where a skip would hide a gap."""
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        message = "needs PostgreSQL (set DATABASE_URL=postgres://...)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}: CI must run every PostgreSQL test")
        pytest.skip(message)


def _user(username: str, group: str | None = None, **extra) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def viewer(db) -> User:
    return _user("vera", "viewer")


@pytest.fixture
def operator(db) -> User:
    return _user("otto", "operator")


@pytest.fixture
def outsider(db) -> User:
    """Logged in, but in no role."""
    return _user("nobody")


@pytest.fixture
def admin_user(db) -> User:
    return _user("ada", "admin", is_staff=True)


@pytest.fixture
def worker(db) -> Worker:
    return Worker.objects.create(
        name="cml-worker-01", region="us-east-1", instance_id="i-0123456789abcdef0"
    )


@pytest.fixture(autouse=True)
def _test_settings(settings):
    """Production serves hashed files that `collectstatic` made; the suite uses the sources.
    And a fast password hasher: the suite logs many users in."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
