"""CML REST API observations (aiohttp): every worker concurrently, under one bound.

One small aiohttp session per worker, all sharing one TLS context; socket timeouts per request,
a deadline per worker, a cap on the size of each answer; tokens cached by the caller. One
worker's failure becomes that worker's `CMLObservation(ok=False, error=...)` and never an
exception. No Django here.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import aiohttp
import certifi

from fleet.collection.sources.cml_parse import (
    Notes,
    licence_summary,
    license_state,
    parse_lab,
    parse_stats,
)

API = "/api/v0"
MAX_RESPONSE_BYTES = 5_000_000  # the default cap on one answer's (decoded) body
CALLS_AT_ONCE = 4  # requests one worker has in flight at most (health, stats, licensing, labs)
LAB_FETCHES_AT_ONCE = 8  # per worker, when labs are read one by one (CML without lab tiles)
T = TypeVar("T")


@dataclass(frozen=True)
class LabObservation:
    """One lab as CML reports it; state is CML's own (DEFINED_ON_CORE, STOPPED, STARTED...)."""

    lab_id: str
    title: str
    description: str
    state: str  # "UNKNOWN" when missing
    owner: str  # the owner's username (owner_username; older CML: owner)
    node_count: int
    link_count: int
    created: datetime | None  # timezone-aware (UTC when CML gives no offset)
    modified: datetime | None


@dataclass(frozen=True)
class CMLObservation:
    """What one worker's CML API said in one cycle; None wherever it said nothing usable."""

    ok: bool  # the CML API answered system_information, authenticate, health, stats and licensing
    error: str = ""  # short human message when not ok, or when an optional call (labs) failed
    # The figures below carry the Worker's own field names (fleet.models.field_groups).
    cml_version: str = ""  # system_information.version
    cml_ready: bool | None = None  # system_information.ready
    license_state: str | None = "unknown"  # a LicenseState value (cml_parse); None: not read
    licence: dict[str, Any] | None = None  # cml_parse.licence_summary; None: not read
    cml_cpu_percent: float | None = None  # system_stats all.cpu.percent, 0-100
    cml_memory_used: int | None = None  # bytes, all computes
    cml_memory_total: int | None = None
    cml_disk_used: int | None = None  # bytes, all computes (controller's disk if no total)
    cml_disk_total: int | None = None
    nodes_running: int | None = None  # summed over the computes' dominfo
    nodes_total: int | None = None
    allocated_cpus: int | None = None  # vCPUs allocated to running nodes, summed over dominfo
    compute_hosts: tuple[dict[str, Any], ...] = ()  # per compute, see cml_parse.compute_host
    labs: tuple[LabObservation, ...] | None = None  # None when labs were not read or failed
    notes: tuple[str, ...] = ()  # values the answers held that could not be used (cml_parse)


@dataclass(frozen=True)
class CMLTarget:
    """A worker to observe: its key (the Worker pk), its CML base URL, and whether to read its
    licence (it changes rarely: full cycles read it, and any cycle where it is unknown)."""

    key: int
    endpoint: str
    read_licence: bool = True


class CMLError(Exception):
    """One call failed; the message is short and meant for people."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def cml_reader(*, read_labs: bool, **options: Any) -> CMLReader[CMLObservation]:
    """A reader of every target's health, stats, licence (targets with `read_licence`; the
    others' comes back None) and labs (with `read_labs`); its options are `CMLReader`'s."""

    async def observe(api: _WorkerAPI, target: CMLTarget) -> CMLObservation:
        return await _observe_worker(api, read_labs, target.read_licence)

    return CMLReader(observe, lambda error: CMLObservation(ok=False, error=error), **options)


async def observe_cml(
    targets: list[CMLTarget],
    *,
    read_labs: bool,
    on_worker_done: Callable[[], None] | None = None,
    **options: Any,
) -> dict[int, CMLObservation]:
    """Observe every target (see `cml_reader`); never raises for a worker's fault."""
    return await read_all(cml_reader(read_labs=read_labs, **options), targets, on_worker_done)


@dataclass(frozen=True)
class TelemetryObservation:
    """One worker's CML telemetry: its whole event history as answered (a list, else
    empty with an error), and the id CML gives the account this product signs in with."""

    ok: bool
    error: str = ""
    events: list[Any] = field(default_factory=list)
    own_user_id: str = ""  # "" when this CML has no /users/{name}/id


async def observe_telemetry(
    targets: list[CMLTarget], *, on_worker_done: Callable[[], None] | None = None, **options: Any
) -> dict[int, TelemetryObservation]:
    """Read `GET /telemetry/events` (and our account's user id) of every target, under the
    same bounds, TLS and token cache as `observe_cml` (`CMLReader`'s options)."""

    async def observe(api: _WorkerAPI, target: CMLTarget) -> TelemetryObservation:
        own, events = await asyncio.gather(
            _own_user_id(api), api.get("/telemetry/events"), return_exceptions=True
        )
        for result in (own, events):
            if isinstance(result, BaseException):
                if isinstance(result, CMLError):
                    return TelemetryObservation(ok=False, error=str(result))
                raise result
        if not isinstance(events, list):
            return TelemetryObservation(
                ok=False, error=f"CML /telemetry/events: not a JSON list ({type(events).__name__})"
            )
        return TelemetryObservation(ok=True, events=events, own_user_id=own)

    reader = CMLReader(
        observe, lambda error: TelemetryObservation(ok=False, error=error), **options
    )
    return await read_all(reader, targets, on_worker_done)


async def _own_user_id(api: _WorkerAPI) -> str:
    """Our account's id on this CML (CML 2.4+); "" where the call does not exist."""
    username = api.credentials["username"]
    try:
        answer = await api.get(f"/users/{username}/id")
    except CMLError as exc:
        if exc.status in (403, 404, 405):
            return ""
        raise
    return answer if isinstance(answer, str) else ""


class CMLReader(Generic[T]):
    """Reads workers' CML APIs in one event loop, at most `concurrency` at once, each under its
    deadline; a worker's timeout or bug becomes `failed(message)`, never an exception.

    Workers are started one at a time (`start`), so more can be added while others are read:
    the collector starts those it expects to be running before AWS has confirmed them. Create
    it inside the running loop. The options: the account (`username`, `password`), TLS
    (`verify_tls` against `ca_bundle`, a PEM file of the CAs that signed CML's certificates,
    or the public CAs), the bounds (`concurrency`, `request_timeout`, `worker_deadline`,
    `cycle_deadline`: seconds from now for every read, `max_response_bytes`: a larger answer
    is that call's error, read no further) and `tokens` (endpoint → token, read and updated in
    place so that callers keep it across cycles).
    """

    def __init__(
        self,
        observe: Callable[[_WorkerAPI, CMLTarget], Awaitable[T]],
        failed: Callable[[str], T],
        *,
        username: str,
        password: str,
        verify_tls: bool,
        ca_bundle: str | None = None,
        concurrency: int = 50,
        request_timeout: float = 10.0,
        worker_deadline: float = 60.0,
        cycle_deadline: float | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        tokens: dict[str, str] | None = None,
    ) -> None:
        self._observe, self._failed = observe, failed
        self.tokens = {} if tokens is None else tokens
        self._credentials = {"username": username, "password": password}
        self._bound = asyncio.Semaphore(concurrency)
        # One small connection pool per worker (a session), all sharing one TLS context (the
        # costly part to build): a worker's requests reuse its connections, never another's.
        self._tls = tls_context(verify_tls, ca_bundle)
        # Socket timeouts per request; waiting for a pooled connection is bounded by the
        # worker's deadline instead.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=request_timeout, sock_read=request_timeout
        )
        # Proxies come from the environment, read once: sessions look only when there are any.
        self._env_proxies = bool(urllib.request.getproxies())
        self._request_timeout, self._max_response_bytes = request_timeout, max_response_bytes
        self._worker_deadline, self._cycle_deadline = worker_deadline, cycle_deadline
        self._loop = asyncio.get_running_loop()
        self._cycle_end = self._loop.time() + cycle_deadline if cycle_deadline else float("inf")

    def start(self, target: CMLTarget) -> asyncio.Task[T]:
        """Begin reading one worker (as soon as a slot is free); the task never raises but
        may be cancelled."""
        return self._loop.create_task(self._observe_one(target))

    async def _observe_one(self, target: CMLTarget) -> T:
        async with (
            self._bound,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CALLS_AT_ONCE, ssl=self._tls),
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),  # CML authenticates with bearer tokens
                trust_env=self._env_proxies,
            ) as session,
        ):
            api = _WorkerAPI(
                session,
                target.endpoint,
                self._credentials,
                self.tokens,
                self._request_timeout,
                self._max_response_bytes,
            )
            worker_end = self._loop.time() + self._worker_deadline
            try:
                async with asyncio.timeout_at(min(worker_end, self._cycle_end)):
                    return await self._observe(api, target)
            except TimeoutError:
                if worker_end <= self._cycle_end:
                    return self._failed(f"deadline of {self._worker_deadline:g}s exceeded")
                return self._failed(
                    f"the cycle's deadline of {self._cycle_deadline:g}s was reached"
                )
            except Exception as exc:  # a bug must not take the other workers down
                return self._failed(f"{type(exc).__name__}: {exc}"[:500])


async def read_all(
    reader: CMLReader[T],
    targets: list[CMLTarget],
    on_worker_done: Callable[[], None] | None = None,
) -> dict[int, T]:
    """Read every target; `on_worker_done` is called as each one ends (progress)."""
    return await gather_reads(
        {target.key: reader.start(target) for target in targets}, on_worker_done
    )


async def gather_reads(
    reads: dict[int, asyncio.Task[T]], on_worker_done: Callable[[], None] | None = None
) -> dict[int, T]:
    """Wait for reads begun with `CMLReader.start`, by key; `on_worker_done` is called as each
    one ends (progress)."""
    if on_worker_done:
        for task in reads.values():
            task.add_done_callback(lambda _: on_worker_done())
    return dict(zip(reads, await asyncio.gather(*reads.values()), strict=True))


@functools.cache
def tls_context(verify: bool, ca_bundle: str | None) -> ssl.SSLContext:
    """The client TLS context, built once per process (loading the CAs costs about 20 ms a
    time): a CA bundle changed on disk is read when the process restarts."""
    if verify:
        return ssl.create_default_context(cafile=ca_bundle or certifi.where())
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _observe_worker(api: _WorkerAPI, read_labs: bool, read_licence: bool) -> CMLObservation:
    """system_information alongside authentication, then everything else at once."""
    version, ready = "", None
    notes: Notes = []
    auth = None if api.token else asyncio.create_task(api.authenticate())
    try:
        response = await api.send("GET", "/system_information")
        if response.status_code == 502:  # nginx in front of a CML still booting
            return CMLObservation(ok=False, error="not ready (HTTP 502)", cml_ready=False)
        info = _object(_json(response, "/system_information"), "/system_information", notes)
        version = _string(info.get("version"), "CML /system_information version", notes)
        ready = info["ready"] if isinstance(info.get("ready"), bool) else None
        if ready is False:
            return CMLObservation(
                ok=False, error="not ready (booting)", cml_version=version, cml_ready=False
            )
        if auth is not None:
            await auth
    except CMLError as exc:
        return CMLObservation(
            ok=False, error=str(exc), cml_version=version, cml_ready=ready, notes=tuple(notes)
        )
    finally:
        _discard(auth)

    calls = [api.get("/system_health"), api.get("/system_stats")]
    if read_licence:
        calls.append(api.get("/licensing"))
    required = len(calls)
    if read_labs:
        calls.append(_read_labs(api, notes))
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, CMLError):
            raise result
    answers = [None if isinstance(result, CMLError) else result for result in results]
    _object(answers[0], "/system_health", notes)  # answering it is part of being available
    stats = _object(answers[1], "/system_stats", notes)
    licensing = _object(answers[2], "/licensing", notes) if read_licence else {}
    return CMLObservation(
        ok=not any(isinstance(result, CMLError) for result in results[:required]),
        error="; ".join(str(result) for result in results if isinstance(result, CMLError)),
        cml_version=version,
        cml_ready=ready,
        license_state=license_state(licensing) if read_licence else None,
        licence=licence_summary(licensing, notes) if read_licence and licensing else None,
        labs=answers[required] if read_labs else None,
        **parse_stats(stats, notes),
        notes=tuple(notes),
    )


async def _read_labs(api: _WorkerAPI, notes: Notes) -> tuple[LabObservation, ...]:
    """All labs in one call, or (older CML without lab tiles) the list, then each lab at once."""
    try:
        answer = _object(await api.get("/populate_lab_tiles"), "/populate_lab_tiles", notes)
    except CMLError as exc:
        if exc.status not in (404, 405):
            raise
    else:
        tiles = answer.get("lab_tiles")
        if isinstance(tiles, list):
            tiles = {str(n): tile for n, tile in enumerate(tiles)}
        tiles = _object(tiles, "/populate_lab_tiles lab_tiles", notes)
        return tuple(_lab(key, data, notes) for key, data in tiles.items() if _is_lab(data, notes))

    listed = await api.get("/labs", show_all="true")
    if not isinstance(listed, list):
        notes.append(f"CML /labs: not a JSON list ({type(listed).__name__})")
        listed = []
    lab_ids = [lab_id for lab_id in listed if isinstance(lab_id, str) and lab_id]
    if len(lab_ids) < len(listed):
        notes.append("CML /labs: an entry that is not a lab id, skipped")
    fetches = asyncio.Semaphore(LAB_FETCHES_AT_ONCE)

    async def fetch(lab_id: str) -> Any:
        async with fetches:
            try:
                return await api.get(f"/labs/{lab_id}")
            except CMLError as exc:
                if exc.status == 404:  # deleted since the list was read
                    return None
                raise

    labs = await asyncio.gather(*(fetch(lab_id) for lab_id in dict.fromkeys(lab_ids)))
    return tuple(
        _lab(i, data, notes)
        for i, data in zip(dict.fromkeys(lab_ids), labs, strict=True)
        if data is not None and _is_lab(data, notes)
    )


def _is_lab(data: Any, notes: Notes) -> bool:
    if isinstance(data, dict):
        return True
    notes.append(f"CML labs: a lab that is not a JSON object ({type(data).__name__}), skipped")
    return False


def _lab(key: str, data: dict, notes: Notes) -> LabObservation:
    return LabObservation(**parse_lab(key, data, notes))


class _WorkerAPI:
    """One worker's CML API: its base URL, its cached token, one re-authentication on 401."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        endpoint: str,
        credentials: dict[str, str],
        tokens: dict[str, str],
        request_timeout: float,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.session = session
        self.endpoint = endpoint
        self.base = endpoint.rstrip("/") + API
        self.credentials = credentials
        self.tokens = tokens
        self.request_timeout = request_timeout
        self.max_response_bytes = max_response_bytes
        self._renewal: asyncio.Future[str] | None = None

    @property
    def token(self) -> str | None:
        return self.tokens.get(self.endpoint)

    async def send(self, method: str, path: str, **kwargs: Any) -> _Answer:
        """One request, its body read up to the size cap; transport failures become a CMLError."""
        try:
            async with self.session.request(method, self.base + path, **kwargs) as response:
                return _Answer(response.status, await self._body(response, path))
        except TimeoutError:  # aiohttp's socket timeouts; the worker's deadline cancels instead
            raise CMLError(f"timeout after {self.request_timeout:g}s from {path}") from None
        except aiohttp.ClientConnectorError as exc:
            reason = str(exc.os_error) or type(exc).__name__
            if isinstance(exc, aiohttp.ClientConnectorCertificateError):
                reason = _untrusted(str(exc.certificate_error))
            raise CMLError(f"cannot connect to {self.endpoint}: {reason}"[:300]) from None
        except aiohttp.ClientError as exc:
            raise CMLError(f"{type(exc).__name__} from {path}") from None

    async def _body(self, response: aiohttp.ClientResponse, path: str) -> bytes:
        """The (decoded) body, or a CMLError as soon as it is known to be over the cap."""
        limit = self.max_response_bytes
        too_big = CMLError(f"CML {path} answered more than {_size(limit)}", response.status)
        if (response.content_length or 0) > limit:
            raise too_big
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise too_big
        return bytes(body)

    async def authenticate(self) -> str:
        """A fresh token, stored in the shared tokens dict."""
        response = await self.send("POST", "/authenticate", json=self.credentials)
        if response.status_code in (401, 403):
            raise CMLError(
                f"authentication failed ({response.status_code}): check CML_USERNAME/CML_PASSWORD",
                response.status_code,
            )
        token = _json(response, "/authenticate")
        if not isinstance(token, str) or not token:
            raise CMLError("no token from /authenticate")
        self.tokens[self.endpoint] = token
        return token

    async def get(self, path: str, **params: str) -> Any:
        """GET an authenticated path's JSON, re-authenticating once on 401."""
        response = await self._get(path, self.token or await self._renew(), params)
        if response.status_code == 401:
            response = await self._get(path, await self._renew(), params)
            if response.status_code == 401:
                self.tokens.pop(self.endpoint, None)
                raise CMLError("authentication rejected (401)", 401)
        return _json(response, path)

    async def _get(self, path: str, token: str, params: dict[str, str]) -> _Answer:
        headers = {"Authorization": f"Bearer {token}"}
        return await self.send("GET", path, headers=headers, params=params or None)

    async def _renew(self) -> str:
        # One re-authentication per worker and observation, shared by the calls running side by
        # side that all got 401: a token refused again is an error, not a reason to loop.
        if self._renewal is None:
            self._renewal = asyncio.ensure_future(self.authenticate())
        return await self._renewal


def _untrusted(reason: str) -> str:
    """A short message for a certificate that failed verification, and what to do about it."""
    detail = reason.partition("certificate verify failed:")[2].partition("(_ssl")[0].strip()
    return (
        f"TLS certificate not accepted ({detail or 'verification failed'}): "
        "set CML_CA_BUNDLE to the CA that signed CML's certificates"
    )


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer, its body read in full (it is under the cap)."""

    status_code: int
    content: bytes


def _json(response: _Answer, path: str) -> Any:
    if response.status_code != 200:
        raise CMLError(f"HTTP {response.status_code} from {path}", response.status_code)
    if not response.content.strip():
        raise CMLError(f"CML {path} answered an empty body")
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        raise CMLError(f"invalid JSON from {path}") from None


def _object(value: Any, path: str, notes: Notes) -> dict:
    """An answer that should be a JSON object; anything else is noted and read as {}."""
    if value is None or isinstance(value, dict):
        return value or {}
    notes.append(f"CML {path}: not a JSON object ({type(value).__name__})")
    return {}


def _string(value: Any, where: str, notes: Notes) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    notes.append(f"{where}: not a string ({type(value).__name__})")
    return ""


def _size(limit: int) -> str:
    return f"{limit / 1_000_000:g} MB" if limit >= 1_000_000 else f"{limit:,} bytes"


def _discard(task: asyncio.Task | None) -> None:
    """Cancel an unfinished task, or mark a finished one's exception as seen."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()
