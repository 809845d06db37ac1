"""The worker list's state (filters, search, sort, page) read from the URL, and what it shows.

Bad values never fail the page: each is dropped with a note the page displays.
"""

from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from django.db.models import F, Q, QuerySet

from fleet.live.charts import WINDOWS
from fleet.models import ServiceStatus, Worker, WorkerStatus

PER_PAGE = 50
NOT_AVAILABLE = "not-available"  # any CML service state but available (the stat card's count)
SORTS = {
    "status": "status",
    "name": "name",
    "instance": "instance_id",
    "type": "instance_type",
    "region": "region",
    "cml": "service_status",
    "cpu": "cpu_percent",
    "memory": "memory_percent",
    "disk": "disk_percent",
    "labs": "labs_count",
    "polled": "last_polled_at",
}
MAX_SEARCH = 100


@dataclass(frozen=True)
class ListState:
    q: str = ""
    region: str = ""
    status: str = ""
    service: str = ""
    sort: str = "name"
    descending: bool = False
    terminated: bool = False  # show terminated workers too
    trouble: bool = False  # only workers in trouble
    idle: bool = False  # only idle workers
    page: str = "1"
    window: str = ""  # the fleet chart's window; empty: the default
    notes: tuple[str, ...] = field(default=(), compare=False)

    def query(self, **changes) -> str:
        """This state as a query string, with `changes` applied (page resets unless given)."""
        state = replace(self, **{"page": "1", **changes})
        params = {
            "q": state.q,
            "region": state.region,
            "status": state.status,
            "service": state.service,
            "sort": ("-" if state.descending else "") + state.sort,
            "terminated": "1" if state.terminated else "",
            "trouble": "1" if state.trouble else "",
            "idle": "1" if state.idle else "",
            "page": state.page if state.page != "1" else "",
            "window": state.window,
        }
        if params["sort"] == "name":
            params["sort"] = ""
        return urlencode({key: value for key, value in params.items() if value})

    def sorted_by(self, column: str) -> str:
        """The query string for a click on a column header: sort by it, or flip its order."""
        descending = not self.descending if column == self.sort else False
        return self.query(sort=column, descending=descending)


def parse_list_state(params, regions: list[str]) -> ListState:
    notes = []

    def choice(name: str, allowed) -> str:
        value = params.get(name, "")
        if value and value not in allowed:
            notes.append(f"Ignored {name} {value!r}: not one of {', '.join(allowed)}.")
            return ""
        return value

    q = params.get("q", "").strip()
    if "\x00" in q:  # PostgreSQL refuses NUL in text, even in a search
        notes.append("Search: NUL characters removed.")
        q = q.replace("\x00", "")
    if len(q) > MAX_SEARCH:
        notes.append(f"Search shortened to {MAX_SEARCH} characters.")
        q = q[:MAX_SEARCH]
    sort = params.get("sort", "name") or "name"
    descending = sort.startswith("-")
    if sort.lstrip("-") not in SORTS:
        notes.append(f"Ignored sort {sort!r}: sorted by name.")
        sort, descending = "name", False
    return ListState(
        q=q,
        region=choice("region", regions),
        status=choice("status", WorkerStatus.values),
        service=choice("service", [*ServiceStatus.values, NOT_AVAILABLE]),
        sort=sort.lstrip("-"),
        descending=descending,
        terminated=params.get("terminated", "") in ("1", "on", "true"),
        trouble=params.get("trouble", "") in ("1", "on", "true"),
        idle=params.get("idle", "") in ("1", "on", "true"),
        page=params.get("page", "1"),
        window=choice("window", list(WINDOWS)),
        notes=tuple(notes),
    )


def filtered_workers(state: ListState) -> QuerySet[Worker]:
    workers = Worker.objects.all()
    if state.q:
        workers = workers.filter(
            Q(name__icontains=state.q)
            | Q(instance_id__icontains=state.q)
            | Q(public_ip__icontains=state.q)
            | Q(private_ip__icontains=state.q)
        )
    if state.region:
        workers = workers.filter(region=state.region)
    if state.status:
        workers = workers.filter(status=state.status)
    elif not state.terminated:
        workers = workers.visible()
    if state.service == NOT_AVAILABLE:
        workers = workers.exclude(service_status=ServiceStatus.AVAILABLE)
    elif state.service:
        workers = workers.filter(service_status=state.service)
    if state.trouble:
        workers = workers.in_trouble()
    if state.idle:
        workers = workers.idle()
    column = F(SORTS[state.sort])
    order = column.desc(nulls_last=True) if state.descending else column.asc(nulls_last=True)
    return workers.order_by(order, "pk")
