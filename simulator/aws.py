"""EC2 and CloudWatch for the simulated fleet, on moto's server (loopback, ephemeral port)."""

import contextlib
import logging
import multiprocessing
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

DEFAULT_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
AMI_ID = "ami-785db401"  # one of moto's built-in images (Ubuntu 16.04), present in every region
INSTANCE_SIZES = {  # instance type -> (vCPUs, memory GiB), for the CML stats to agree with EC2
    "m5.2xlarge": (8, 32),
    "m5.4xlarge": (16, 64),
    "c5.4xlarge": (16, 32),
    "m5zn.metal": (48, 192),
}
ENVIRONMENTS = ("production", "staging", "training")
TEAMS = ("netops", "training", "sales-engineering", "security")
MAX_DATA_PER_CALL = 1000  # AWS's limit of MetricDatum items per PutMetricData


@dataclass(frozen=True)
class SeededInstance:
    """One EC2 instance created by `seed_instances`; `has_agent`: it runs the CloudWatch agent."""

    region: str
    instance_id: str
    name: str
    running: bool
    has_agent: bool = True
    instance_type: str = "m5.2xlarge"


def aws_client(service: str, region: str, endpoint_url: str) -> Any:
    """A boto3 client for the simulated AWS, with dummy credentials passed explicitly."""
    return boto3.client(service, region_name=region, endpoint_url=endpoint_url, **CREDENTIALS)


def start_moto_server() -> tuple[ThreadedMotoServer, str]:
    """Start moto's server on 127.0.0.1 (ephemeral port) with empty state; (server, url)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint_url = f"http://{host}:{port}"
    httpx.post(f"{endpoint_url}/moto-api/reset").raise_for_status()
    return server, endpoint_url


class MotoProcess:
    """moto's server in a process of its own, as AWS is on machines of its own: rendering a
    large DescribeInstances then never holds up the simulated CML servers, which would
    otherwise wait on it in the same interpreter. `endpoint_url` is ready on return."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve_moto, args=(child,), daemon=True)
        self._process.start()
        child.close()
        self.endpoint_url: str = self._pipe.recv()

    def stop(self) -> None:
        self._pipe.close()  # the child sees EOF and stops its server
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()


def _serve_moto(pipe: Connection) -> None:
    server, endpoint_url = start_moto_server()
    pipe.send(endpoint_url)
    with contextlib.suppress(EOFError):  # EOF: the parent closed its end, so stop
        pipe.recv()
    server.stop()


def seed_instances(
    endpoint_url: str,
    count: int = 24,
    regions: Sequence[str] = DEFAULT_REGIONS,
    stopped: int = 3,
    seed: int = 0,
) -> list[SeededInstance]:
    """Launch `count` tagged CML workers round-robin over `regions`; stop `stopped` of them.

    About one in six do not run the CloudWatch agent (`has_agent=False`). Moto's id generator
    is seeded too, so the same seed on a fresh server gives the same instance ids.
    """
    httpx.post(f"{endpoint_url}/moto-api/seed", params={"a": seed}).raise_for_status()  # same ids
    rng = random.Random(seed)
    stopped_at = set(rng.sample(range(count), min(stopped, count)))
    agentless_at = set(rng.sample(range(count), count // 6))
    width = max(2, len(str(count)))
    clients = {region: aws_client("ec2", region, endpoint_url) for region in regions}
    instances = []
    for n in range(count):
        region = regions[n % len(regions)]
        name = f"cml-worker-{n + 1:0{width}d}"
        tags = {
            "Name": name,
            "Environment": rng.choice(ENVIRONMENTS),
            "Team": rng.choice(TEAMS),
            "Role": "cml-worker",
        }
        instance_type = rng.choice(sorted(INSTANCE_SIZES))
        launched = clients[region].run_instances(
            ImageId=AMI_ID,
            MinCount=1,
            MaxCount=1,
            InstanceType=instance_type,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
                }
            ],
        )
        instance_id = launched["Instances"][0]["InstanceId"]
        instances.append(
            SeededInstance(
                region=region,
                instance_id=instance_id,
                name=name,
                running=n not in stopped_at,
                has_agent=n not in agentless_at,
                instance_type=instance_type,
            )
        )
    for region, client in clients.items():
        to_stop = [i.instance_id for i in instances if i.region == region and not i.running]
        if to_stop:
            client.stop_instances(InstanceIds=to_stop)
            client.get_waiter("instance_stopped").wait(
                InstanceIds=to_stop, WaiterConfig={"Delay": 1, "MaxAttempts": 10}
            )
    return instances


@dataclass
class MetricDrift:
    """Each instance's metric levels, random-walking from one round of metrics to the next."""

    rng: random.Random = field(default_factory=random.Random)
    levels: dict[str, dict[str, float]] = field(default_factory=dict)

    def step(self, instance_id: str) -> dict[str, float]:
        """The instance's next CPU, memory and disk percentages."""
        rng = self.rng
        level = self.levels.get(instance_id)
        if level is None:
            level = {
                "cpu": rng.uniform(3, 60),
                "mem": rng.uniform(20, 75),
                "disk": rng.uniform(15, 70),
            }
        else:
            level = {
                "cpu": _clamp(level["cpu"] + rng.gauss(0, 8), 0.5, 99.5),
                "mem": _clamp(level["mem"] + rng.gauss(0, 3), 5, 97),
                "disk": _clamp(level["disk"] + rng.gauss(0.05, 0.3), 5, 99),
            }
        self.levels[instance_id] = level
        return level


def publish_metrics(
    endpoint_url: str,
    instances: Sequence[SeededInstance],
    rng: random.Random | None = None,
    when: datetime | None = None,
    drift: MetricDrift | None = None,
) -> int:
    """Write one round of metrics for the running instances; return the number of data points.

    `AWS/EC2 CPUUtilization` for each, and `CWAgent mem_used_percent`/`disk_used_percent` with
    the single dimension InstanceId (agent aggregation_dimensions [["InstanceId"]]) for those
    with the agent. Pass the same `drift` between rounds to continue each instance's walk;
    without it the walk starts afresh from `rng`.
    """
    if drift is None:
        drift = MetricDrift(rng or random.Random())
    timestamp = when or datetime.now(UTC)
    written = 0
    for region in dict.fromkeys(i.region for i in instances):
        data: dict[str, list[dict[str, Any]]] = {"AWS/EC2": [], "CWAgent": []}
        for instance in instances:
            if instance.region != region or not instance.running:
                continue
            level = drift.step(instance.instance_id)
            dimensions = [{"Name": "InstanceId", "Value": instance.instance_id}]
            point = {"Dimensions": dimensions, "Timestamp": timestamp, "Unit": "Percent"}
            data["AWS/EC2"].append({**point, "MetricName": "CPUUtilization", "Value": level["cpu"]})
            if instance.has_agent:
                data["CWAgent"].append(
                    {**point, "MetricName": "mem_used_percent", "Value": level["mem"]}
                )
                data["CWAgent"].append(
                    {**point, "MetricName": "disk_used_percent", "Value": level["disk"]}
                )
        client = aws_client("cloudwatch", region, endpoint_url)
        for namespace, items in data.items():
            for start in range(0, len(items), MAX_DATA_PER_CALL):
                batch = items[start : start + MAX_DATA_PER_CALL]
                client.put_metric_data(Namespace=namespace, MetricData=batch)
                written += len(batch)
    return written


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))
