"""Benchmark the live layer: C browsers' SSE streams against a real daphne, a change to every
worker, and how fast and how precisely each change arrives.

    python bench/sse.py --clients 1000 --workers 1000 --per-client 50

Each client is a list page: it follows the rows of --per-client consecutive workers (client c
shows the c-th page of that size, wrapping around the fleet). Every worker is then changed once
(after every stream is open and caught up), each in its own committed transaction that also
writes the change log. Latency runs from that commit to the arrival of the row fragment that
shows it. The last line is key=value pairs:

    clients workers events_expected events_received irrelevant p50_ms p95_ms max_ms
    rss_kb_per_client per_client sse_events

An event here is one fragment update delivered: a row arriving inside a `fragments` event (the
rows that changed together, as out-of-band swaps) counts once. `irrelevant` counts row updates
a client received for a worker it does not show (target 0); `sse_events` counts the SSE events
that carried them (coalescing makes it smaller than events_received). Uses a fresh SQLite
database in a scratch directory, or DATABASE_URL if set (PostgreSQL: the web process wakes on
NOTIFY; use an empty database: the benchmark creates its workers there).
"""

import argparse
import asyncio
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--per-client", type=int, default=1)
    parser.add_argument("--settle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.per_client > args.workers:
        parser.error("--per-client cannot exceed --workers")
    # Each client holds one socket; leave room for the server's own.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(
        resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.clients + 1024)), hard)
    )
    with tempfile.TemporaryDirectory() as scratch:
        asyncio.run(run(args, Path(scratch)))


def setup_django(scratch: Path) -> None:
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{scratch / 'bench.sqlite3'}")
    os.environ.update(
        {
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "SECURE_COOKIES": "false",
            "STATIC_ROOT": str(scratch / "static"),
            "DJANGO_SETTINGS_MODULE": "monitor.settings",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)


def session_cookie() -> str:
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore

    user = User.objects.create_user("bench", password="bench-password-1")
    user.groups.add(Group.objects.get(name="viewer"))
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return session.session_key


def start_daphne(port: int) -> subprocess.Popen:
    from fleet.supervise import daphne

    return subprocess.Popen(
        daphne("127.0.0.1", port),
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=open(os.environ.get("BENCH_SERVER_LOG", os.devnull), "w"),  # noqa: SIM115
    )


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# A row fragment as it arrives: its out-of-band opening tag inside a `fragments` event.
ROW_RE = re.compile(rb'^data: <tr id="worker-(\d+)-row"', re.MULTILINE)
EVENT_RE = re.compile(rb"^event: ", re.MULTILINE)
ID_RE = re.compile(rb"^id: ", re.MULTILINE)


class Client:
    """One browser page: an SSE stream for a page of workers, recording what arrives and when.
    It reads whole events from large reads (a line-by-line reader would cost more CPU than the
    server it measures, on the same cores)."""

    def __init__(self, port: int, cookie: str, workers: list[int]) -> None:
        self.port, self.cookie, self.workers = port, cookie, set(workers)
        self.received: list[tuple[int, float]] = []  # (worker pk, arrival time)
        self.irrelevant = 0
        self.sse_events = 0
        self.ready = asyncio.Event()

    async def run(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        ids = ",".join(map(str, sorted(self.workers)))
        writer.write(
            f"GET /events/?fragments=row&workers={ids} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Accept: text/event-stream\r\nCookie: sessionid={self.cookie}\r\n\r\n".encode()
        )
        await writer.drain()
        pending = b""
        try:
            while chunk := await reader.read(1 << 16):
                arrived = time.time()
                # Complete events only (an event ends with a blank line); the rest waits.
                end = (pending + chunk).rfind(b"\n\n")
                if end < 0:
                    pending += chunk
                    continue
                events, pending = (pending + chunk)[: end + 2], (pending + chunk)[end + 2 :]
                if not self.ready.is_set() and ID_RE.search(events):
                    self.ready.set()  # open and caught up: its first id line
                self.sse_events += len(EVENT_RE.findall(events))
                for match in ROW_RE.finditer(events):
                    pk = int(match.group(1))
                    self.received.append((pk, arrived))
                    if pk not in self.workers:
                        self.irrelevant += 1
        finally:
            writer.close()


def change_every_worker(pks: list[int]) -> dict[int, float]:
    """One committed change per worker, as the collection writes it; returns commit times."""
    from django.db import transaction

    from fleet.models import Worker
    from fleet.models.changes import record_change

    committed = {}
    for n, pk in enumerate(pks):
        with transaction.atomic():
            Worker.objects.filter(pk=pk).update(cpu_percent=float(n % 100))
            record_change(pk, fields=["cpu_percent"])
        committed[pk] = time.time()
    return committed


async def run(args: argparse.Namespace, scratch: Path) -> None:
    from asgiref.sync import sync_to_async

    await sync_to_async(setup_django)(scratch)
    from fleet.models import Worker

    pks = await sync_to_async(
        lambda: [
            w.pk
            for w in Worker.objects.bulk_create(
                Worker(name=f"w{n}", region="us-east-1", instance_id=f"i-{n:08x}", status="running")
                for n in range(args.workers)
            )
        ]
    )()
    cookie = await sync_to_async(session_cookie)()
    port = 8000 + os.getpid() % 1000
    server = start_daphne(port)
    try:
        for _ in range(100):
            try:
                _, probe = await asyncio.open_connection("127.0.0.1", port)
                probe.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        # One client first, so that the baseline includes the feed and everything a first
        # stream loads; the figure is what each further page costs.
        warm = Client(port, cookie, pks[:1])
        warm_task = asyncio.create_task(warm.run())
        await asyncio.wait_for(warm.ready.wait(), 60)
        idle_rss = rss_kb(server.pid)
        clients = [
            Client(
                port,
                cookie,
                [pks[(c * args.per_client + k) % len(pks)] for k in range(args.per_client)],
            )
            for c in range(args.clients)
        ]
        tasks = [asyncio.create_task(client.run()) for client in clients]
        await asyncio.wait_for(asyncio.gather(*(c.ready.wait() for c in clients)), 120)
        connected_rss = rss_kb(server.pid)

        committed = await sync_to_async(change_every_worker)(pks)
        await asyncio.sleep(args.settle_seconds)
        for task in [*tasks, warm_task]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        server.terminate()
        server.wait(timeout=10)

    expected = sum(
        # one row update per worker a client shows
        len(client.workers)
        for client in clients
    )
    latencies = []
    received = 0
    for client in clients:
        seen_workers = set()
        for pk, arrived in client.received:
            if pk in client.workers and pk not in seen_workers and pk in committed:
                seen_workers.add(pk)
                latencies.append((arrived - committed[pk]) * 1000)
        received += len(seen_workers)
    latencies.sort()
    figures = {
        "clients": args.clients,
        "workers": args.workers,
        "events_expected": expected,
        "events_received": received,
        "irrelevant": sum(client.irrelevant for client in clients),
        "p50_ms": f"{statistics.median(latencies):.0f}" if latencies else "n/a",
        "p95_ms": f"{latencies[int(0.95 * (len(latencies) - 1))]:.0f}" if latencies else "n/a",
        "max_ms": f"{latencies[-1]:.0f}" if latencies else "n/a",
        "rss_kb_per_client": f"{(connected_rss - idle_rss) / args.clients:.1f}",
        "per_client": args.per_client,
        "sse_events": sum(client.sse_events for client in clients),
    }
    print(" ".join(f"{key}={value}" for key, value in figures.items()))


if __name__ == "__main__":
    main()
