"""EC2 and CloudWatch observations, batched per region (boto3, synchronous, one thread a region).

Per region and cycle: ceil(N/100) DescribeInstances + at most ceil(N/100) DescribeInstanceStatus
+ ceil(3 x running/500) GetMetricData, whatever N is. One deadline bounds the whole observation:
a region still answering when it passes is that region's error, and its thread makes no further
call or retry. No Django here: every setting is a parameter.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import parse_timestamp

IDS_PER_CALL = 100  # DescribeInstances / DescribeInstanceStatus: at most 100 ids a call
QUERIES_PER_CALL = 500  # GetMetricData: at most 500 queries a call
METRIC_PERIOD = 300  # seconds, a multiple of 60
METRIC_WINDOW = timedelta(minutes=15)
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]

# (field of InstanceObservation, namespace, metric name, statistic). The CloudWatch agent must
# publish with aggregation_dimensions [["InstanceId"]] so that InstanceId alone identifies the
# series; disk takes the Maximum so the fullest filesystem shows.
METRICS = [
    ("cpu_percent", "AWS/EC2", "CPUUtilization", "Average"),
    ("memory_percent", "CWAgent", "mem_used_percent", "Average"),
    ("disk_percent", "CWAgent", "disk_used_percent", "Maximum"),
]


@dataclass(frozen=True)
class InstanceObservation:
    """What EC2 and CloudWatch said about one instance id in one cycle."""

    instance_id: str
    found: bool  # False: AWS no longer knows this id (vanished, or terminated long ago)
    state: str | None = None  # pending|running|stopping|stopped|shutting-down|terminated
    system_check: str | None = None  # ok|impaired|initializing|insufficient-data|not-applicable
    instance_check: str | None = None  # same values as system_check
    instance_type: str = ""
    ami_id: str = ""
    public_ip: str | None = None
    private_ip: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    name: str = ""  # the Name tag
    launched_at: datetime | None = None  # LaunchTime: when AWS last started the instance
    cpu_percent: float | None = None  # newest CPUUtilization point; None if none in the window
    memory_percent: float | None = None  # CWAgent mem_used_percent; None where no agent runs
    disk_percent: float | None = None  # CWAgent disk_used_percent; None where no agent runs


@dataclass(frozen=True)
class RegionObservation:
    """One region's instances, or why the whole region could not be read."""

    region: str
    instances: dict[str, InstanceObservation]  # by instance id, one per requested id
    error: str | None = None  # the whole region failed: instances is empty
    metrics_error: str | None = None  # CloudWatch failed: EC2 data kept, metrics all None
    api_calls: int = 0  # HTTP attempts made, retries included


class DeadlineExceeded(Exception):
    """The observation's deadline passed: no further AWS call or retry is made."""


class AwsReader:
    """Reads EC2 and CloudWatch; keeps one client per service and region for its lifetime.

    `deadline` (seconds) bounds each `observe()`: regions answer concurrently, and a region not
    done by then is reported as failed while the others are kept. Its thread cannot be
    interrupted mid-request, but it starts no further call or retry after the deadline, and
    the timeouts of one attempt are capped at the deadline, so it ends soon after.
    """

    def __init__(
        self,
        regions: list[str],
        endpoint_url: str | None = None,
        *,
        deadline: float = 60,
        connect_timeout: float = 5,
        read_timeout: float = 20,
        max_attempts: int = 8,
    ) -> None:
        self.regions = list(regions)
        self.endpoint_url = endpoint_url
        self.deadline = deadline
        self._config = Config(
            retries={"mode": "adaptive", "total_max_attempts": max_attempts},
            connect_timeout=min(connect_timeout, deadline),
            read_timeout=min(read_timeout, deadline),
        )
        # Credentials from boto3's default chain; timestamps parsed by the standard library.
        self._session = boto3.session.Session(botocore_session=_botocore_session())
        self._clients: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()
        self._counter = threading.local()  # API calls of the observation running in a thread

    def clients(self, region: str) -> tuple[Any, Any]:
        """The (EC2, CloudWatch) clients of a region, created on first use."""
        with self._lock:
            if region not in self._clients:
                pair = tuple(
                    self._session.client(
                        service,
                        region_name=region,
                        endpoint_url=self.endpoint_url,
                        config=self._config,
                    )
                    for service in ("ec2", "cloudwatch")
                )
                for client in pair:
                    # request-created fires once per HTTP attempt, retries included.
                    client.meta.events.register("request-created", self._count_call)
                self._clients[region] = pair
            return self._clients[region]

    def _count_call(self, **kwargs: Any) -> None:
        """Count an HTTP attempt, or refuse it once the observation's deadline has passed."""
        until = getattr(self._counter, "until", None)
        if until is not None and time.monotonic() > until:
            raise DeadlineExceeded(self._late())
        calls = getattr(self._counter, "calls", None)
        if calls is not None:
            calls[0] += 1

    def _late(self) -> str:
        return f"no answer within the AWS deadline of {self.deadline:g}s"

    def observe(
        self, ids_by_region: dict[str, list[str]], *, metrics: bool = True
    ) -> dict[str, RegionObservation]:
        """Observe every region concurrently, one thread each, within the deadline; a failing
        or late region never raises."""
        if not ids_by_region:
            return {}
        until = time.monotonic() + self.deadline
        pool = ThreadPoolExecutor(max_workers=len(ids_by_region))
        futures = {
            region: pool.submit(self.observe_region, region, ids, metrics=metrics, until=until)
            for region, ids in ids_by_region.items()
        }
        wait(futures.values(), timeout=self.deadline)
        pool.shutdown(wait=False)  # a late region's thread ends on its own, soon after
        return {
            region: future.result()
            if future.done()
            else RegionObservation(region, {}, self._late())
            for region, future in futures.items()
        }

    def observe_region(
        self,
        region: str,
        instance_ids: list[str],
        *,
        metrics: bool = True,
        until: float | None = None,
    ) -> RegionObservation:
        """Describe the given instances of one region and, if asked, their newest metrics;
        `until` (time.monotonic()) is when calls stop being made."""
        ids = list(dict.fromkeys(instance_ids))
        self._counter.calls = calls = [0]
        self._counter.until = until
        try:
            ec2, cloudwatch = self.clients(region)
            described = self._describe(ec2, ids)
            statuses = self._statuses(ec2, list(described))
            running = [
                i for i, d in described.items() if d.get("State", {}).get("Name") == "running"
            ]
            values: dict[str, dict[str, float]] = {}
            metrics_error = None
            if metrics and running:
                try:
                    values = self._metrics(cloudwatch, running)
                except (BotoCoreError, ClientError) as exc:
                    metrics_error = _message(exc)
        except Exception as exc:  # credentials, endpoint, permissions...: the region fails alone
            return RegionObservation(region, {}, error=_message(exc), api_calls=calls[0])
        finally:
            self._counter.calls = self._counter.until = None
        instances = {
            instance_id: _observation(
                instance_id,
                described.get(instance_id),
                statuses.get(instance_id, {}),
                values.get(instance_id, {}),
            )
            for instance_id in ids
        }
        return RegionObservation(region, instances, None, metrics_error, calls[0])

    def find_instances(
        self,
        region: str,
        *,
        tags: dict[str, str] | None = None,
        instance_ids: list[str] | None = None,
    ) -> list[InstanceObservation]:
        """Instances not terminated matching every tag and (if given) the ids, for importing."""
        filters = [{"Name": "instance-state-name", "Values": LIVE_STATES}]
        filters += [{"Name": f"tag:{k}", "Values": [v]} for k, v in (tags or {}).items()]
        ec2, _ = self.clients(region)
        if instance_ids is None:
            pages = _pages(ec2, "describe_instances", "Reservations", Filters=filters)
            found = list(_instances(pages))
        else:
            found = list(self._describe(ec2, list(dict.fromkeys(instance_ids)), filters).values())
        return [_observation(i["InstanceId"], i, {}, {}) for i in found]

    def _describe(self, ec2: Any, ids: list[str], filters: list | None = None) -> dict[str, dict]:
        # An instance-id *filter*, unlike InstanceIds, does not fail the whole call when one id
        # is unknown: unknown ids are simply absent from the answer.
        described = {}
        for chunk in _chunks(ids, IDS_PER_CALL):
            chunk_filters = [*(filters or []), {"Name": "instance-id", "Values": chunk}]
            pages = _pages(ec2, "describe_instances", "Reservations", Filters=chunk_filters)
            described.update((i["InstanceId"], i) for i in _instances(pages))
        return described

    def _statuses(self, ec2: Any, ids: list[str]) -> dict[str, dict]:
        # DescribeInstanceStatus documents no instance-id filter, so it gets explicit InstanceIds,
        # but only ids DescribeInstances has just returned. If one vanished in between, AWS names
        # it in InvalidInstanceID.NotFound: drop it and ask again (a call more, only in that race).
        statuses = {}
        for chunk in _chunks(ids, IDS_PER_CALL):
            while chunk:
                try:
                    pages = _pages(
                        ec2,
                        "describe_instance_status",
                        "InstanceStatuses",
                        InstanceIds=chunk,
                        IncludeAllInstances=True,
                    )
                    statuses.update((status["InstanceId"], status) for status in pages)
                    break
                except ClientError as exc:
                    gone = set(re.findall(r"i-[0-9a-f]+", str(exc))) & set(chunk)
                    code = exc.response.get("Error", {}).get("Code")
                    if code != "InvalidInstanceID.NotFound" or not gone:
                        raise
                    chunk = [i for i in chunk if i not in gone]
        return statuses

    def _metrics(self, cloudwatch: Any, instance_ids: list[str]) -> dict[str, dict[str, float]]:
        """The newest point of every metric of every instance, by instance id then field."""
        targets = [(i, metric) for i in instance_ids for metric in METRICS]
        newest: dict[tuple[str, str], tuple[datetime, float]] = {}
        # End a minute ahead: a point stamped this very second must not fall outside the
        # window (CloudWatch and moto compare at one-second resolution).
        end = datetime.now(UTC) + timedelta(minutes=1)
        for offset in range(0, len(targets), QUERIES_PER_CALL):
            # Query ids must match ^[a-z][a-zA-Z0-9_]*$: q<index into targets>.
            queries = [
                _query(f"q{offset + n}", instance_id, metric)
                for n, (instance_id, metric) in enumerate(
                    targets[offset : offset + QUERIES_PER_CALL]
                )
            ]
            results = _pages(
                cloudwatch,
                "get_metric_data",
                "MetricDataResults",
                MetricDataQueries=queries,
                StartTime=end - METRIC_WINDOW,
                EndTime=end,
                ScanBy="TimestampDescending",
            )
            for result in results:
                instance_id, metric = targets[int(result["Id"][1:])]
                _keep_newest(newest, (instance_id, metric[0]), result)
        values: dict[str, dict[str, float]] = {}
        for (instance_id, name), (_, value) in newest.items():
            values.setdefault(instance_id, {})[name] = value
        return values


def _botocore_session() -> botocore.session.Session:
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=_timestamp
    )
    return session


def _timestamp(value: str) -> datetime:
    """An AWS timestamp. botocore's default parser (dateutil) took a third of the CPU of reading
    a region; ISO 8601, what EC2 and CloudWatch send, needs only `fromisoformat`. Anything
    else goes to botocore's parser."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_timestamp(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _query(query_id: str, instance_id: str, metric: tuple[str, str, str, str]) -> dict:
    _, namespace, name, stat = metric
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": name,
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
            },
            "Period": METRIC_PERIOD,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def _keep_newest(newest: dict, key: tuple[str, str], result: dict) -> None:
    """Keep the newest point by timestamp: the order of the answer is not trusted."""
    points = zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
    for stamp, value in points:
        if key not in newest or stamp > newest[key][0]:
            newest[key] = (stamp, float(value))


def _observation(
    instance_id: str, instance: dict | None, status: dict, values: dict[str, float]
) -> InstanceObservation:
    if instance is None:
        return InstanceObservation(instance_id, found=False)
    tags = {t["Key"]: t.get("Value", "") for t in instance.get("Tags", []) if "Key" in t}
    return InstanceObservation(
        instance_id=instance_id,
        found=True,
        state=instance.get("State", {}).get("Name"),
        system_check=status.get("SystemStatus", {}).get("Status"),
        instance_check=status.get("InstanceStatus", {}).get("Status"),
        instance_type=instance.get("InstanceType", ""),
        ami_id=instance.get("ImageId", ""),
        public_ip=instance.get("PublicIpAddress"),
        private_ip=instance.get("PrivateIpAddress"),
        tags=tags,
        name=tags.get("Name", ""),
        launched_at=launch if isinstance(launch := instance.get("LaunchTime"), datetime) else None,
        **values,
    )


def _pages(client: Any, operation: str, key: str, **kwargs: Any) -> list:
    """Every item under `key` of every page (a page a call, following NextToken)."""
    pages = client.get_paginator(operation).paginate(**kwargs)
    return [item for page in pages for item in page.get(key, [])]


def _instances(reservations: list[dict]) -> Iterator[dict]:
    for reservation in reservations:
        yield from reservation.get("Instances", [])


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _message(exc: Exception) -> str:
    if isinstance(exc, BotoCoreError | ClientError | DeadlineExceeded):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
