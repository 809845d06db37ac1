"""`manage.py demo` starts the whole product and Ctrl-C leaves nothing running."""

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_with_env(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_demo_serves_the_fleet_and_ctrl_c_stops_everything(tmp_path):
    port = _free_port()
    database = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": database}
    env.pop("SECRET_KEY", None)
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--port", str(port), "--workers", "6"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        banner = ""
        deadline = time.monotonic() + 90
        while "Log in as" not in banner and time.monotonic() < deadline:
            banner += demo.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in banner and "demo / cml-fleet-demo" in banner
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(50):
                try:
                    login = client.get("/accounts/login/")
                    break
                except httpx.ConnectError:
                    time.sleep(0.2)
            csrf = client.cookies["csrftoken"]
            client.post(
                "/accounts/login/",
                data={
                    "username": "demo",
                    "password": "cml-fleet-demo",
                    "csrfmiddlewaretoken": csrf,
                },
            )
            page = client.get("/")
        assert login.status_code == 200
        assert page.status_code == 200
        assert len(re.findall(r'id="worker-\d+-row"', page.text)) == 6
        assert len(_processes_with_env(database)) >= 3  # demo, daphne, qcluster (+ its workers)
        with sqlite3.connect(tmp_path / "demo.sqlite3") as db:
            minutes = dict(db.execute("SELECT name, minutes FROM django_q_schedule"))
        assert minutes["fleet: collect metrics"] == 1 and minutes["fleet: collect labs"] == 2
    finally:
        demo.send_signal(signal.SIGINT)
        demo.communicate(timeout=30)
    time.sleep(0.5)
    assert _processes_with_env(database) == []


def test_demo_refuses_a_database_that_is_not_sqlite():
    """It would make a superuser with a published password in a real database."""
    env = {**os.environ, "DEBUG": "true", "DATABASE_URL": "postgres://fleet@127.0.0.1:1/fleet"}
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "runs only on SQLite" in result.stderr
    assert "postgresql database" in result.stderr


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period():
    from fleet.supervise import stop_all

    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', "
            "flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert stubborn.stdout.readline().strip() == "ready"
    started = time.monotonic()
    stop_all([stubborn], grace=0.5)
    assert stubborn.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 10
