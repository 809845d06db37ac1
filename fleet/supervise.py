"""Run a few long-lived processes together (daphne, qcluster) and stop all of them together.

Used by `manage.py demo` and `manage.py run_fleet`. Each child gets its own process group so that
stopping it also stops what it started (qcluster forks workers). Children that ignore SIGTERM
(qcluster can: django-q2#346) are killed after a grace period, so nothing is left running.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class Program:
    name: str
    argv: list[str]


def manage(*args: str) -> list[str]:
    """argv for a manage.py command run by the same Python."""
    return [sys.executable, "manage.py", *args]


def daphne(bind: str, port: int) -> list[str]:
    """argv for a daphne web process serving this project."""
    return [sys.executable, "-m", "daphne", "-b", bind, "-p", str(port), "monitor.asgi:application"]


def supervise(
    programs: list[Program], env: dict[str, str], on_started: Callable[[], None] | None = None
) -> int:
    """Start every program; return when Ctrl-C/SIGTERM arrives or any program exits."""
    children: dict[str, subprocess.Popen] = {}
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    exit_code = 0
    try:
        for program in programs:
            children[program.name] = subprocess.Popen(program.argv, env=env, start_new_session=True)
        if on_started:
            on_started()
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with status {child.returncode}; stopping the rest")
                    exit_code = child.returncode or 1
                    stopping = True
            time.sleep(0.2)
    finally:
        stop_all(list(children.values()))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return exit_code


def stop_all(children: list[subprocess.Popen], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM every child's process group, then SIGKILL whatever is still there after `grace`."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        # Kill the group even if its leader exited: its forked workers may still be alive.
        _signal_group(child, signal.SIGKILL)
        child.wait()


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)
