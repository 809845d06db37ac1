"""A real daphne serving the test database, and headless Chromium driving it (Playwright)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Group, User
from django.db import connection

from fleet.supervise import daphne

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """The test database as a DATABASE_URL another process can open."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    host = db.get("HOST") or "127.0.0.1"
    return f"postgres://{db.get('USER') or ''}@{host}:{db.get('PORT') or 5432}/{db['NAME']}"


def start_daphne(port: int, extra_env: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url(), **(extra_env or {})}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the server keeps Django's async-safety checks
    process = subprocess.Popen(
        daphne("127.0.0.1", port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"daphne exited: {process.stderr.read()}") from None
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("daphne did not start in 30 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def static_root(tmp_path_factory) -> str:
    """`collectstatic` once, as in production (hashed, compressed files served by whitenoise)."""
    root = tmp_path_factory.mktemp("static")
    env = {**os.environ, "STATIC_ROOT": str(root)}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return str(root)


@pytest.fixture
def web(transactional_db, fleet_settings, static_root):
    """A daphne process serving this test's (committed) database; yields its base URL."""
    port = free_port()
    process = start_daphne(port, {**fleet_settings.environment(), "STATIC_ROOT": static_root})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


class CspWatchedBrowser:
    """The browser, with every page of every context it opens watched for Content-Security-
    Policy violations; `violations` lists them until the test that caused them checks it.

    Chromium reports each violation as an issue of its DevTools "Audits" domain, whether or not
    the page runs JavaScript (enabling the domain also replays the issues found before). Under
    this policy the tests give `wait_for_function` a function, not a string: a string is eval'd.
    """

    def __init__(self, browser) -> None:
        self._browser = browser
        self.violations: list[str] = []

    def new_context(self, **options):
        context = self._browser.new_context(**options)
        context.on("page", lambda page: self._watch(context, page))
        return context

    def _watch(self, context, page) -> None:
        session = context.new_cdp_session(page)
        session.on("Audits.issueAdded", self._issue)
        session.send("Audits.enable")

    def _issue(self, event: dict) -> None:
        details = event["issue"]["details"].get("contentSecurityPolicyIssueDetails")
        if details is None:
            return
        kind = details["contentSecurityPolicyViolationType"]
        where = details.get("sourceCodeLocation") or {}
        self.violations.append(
            f"{kind}: {details['violatedDirective']} refused "
            f"{details.get('blockedURL', 'inline')} in {where.get('url')}:{where.get('lineNumber')}"
        )

    def __getattr__(self, name: str):
        return getattr(self._browser, name)


@pytest.fixture(autouse=True)
def no_csp_violations(request):
    """Every browser test loads its pages with zero Content-Security-Policy violations."""
    yield
    if "chromium" in request.fixturenames:
        browser = request.getfixturevalue("chromium")
        found, browser.violations[:] = list(browser.violations), []
        assert not found, "Content-Security-Policy violations:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def chromium():
    """Headless Chromium for one test module. Playwright's sync API runs an event loop in this
    thread while it is open, so it is closed after each module: tests elsewhere that run their
    own loop (asyncio.run) must not find one running."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"no Chromium at {CHROMIUM}: CI must run the browser tests")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    # The test's own ORM calls are plain synchronous code under that loop: let Django run them.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            yield CspWatchedBrowser(browser)
            browser.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    yield context.new_page()
    context.close()


def server_user(username: str, group: str) -> tuple[str, str]:
    """A user the server process can log in: hashed with a hasher it knows (the suite itself
    uses a fast one the server does not have)."""
    password = f"{username}-password-1"
    user = User.objects.create(username=username)
    user.password = PBKDF2PasswordHasher().encode(password, PBKDF2PasswordHasher().salt())
    user.save()
    user.groups.add(Group.objects.get(name=group))
    return username, password


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")
