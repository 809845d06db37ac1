"""A whole simulated fleet: EC2 + CloudWatch on moto, and a CML server for every instance."""

import random
import threading
from collections.abc import Sequence
from types import TracebackType

from moto.server import ThreadedMotoServer

from simulator.aws import (
    CREDENTIALS,
    DEFAULT_REGIONS,
    INSTANCE_SIZES,
    MetricDrift,
    MotoProcess,
    SeededInstance,
    aws_client,
    publish_metrics,
    seed_instances,
    start_moto_server,
)
from simulator.cml import CMLSimulator

# The fault knob of an instance's AWS data (`set_aws_fault`): odd but possible values.
AWS_FAULTS = ("long_name_tag",)  # a 300-character Name tag (EC2 takes 256, moto any length)


class SimulatedFleet:
    """Seeded EC2 instances, their metrics and their CML servers, all on loopback."""

    def __init__(
        self,
        workers: int = 24,
        regions: Sequence[str] | None = None,
        stopped: int = 3,
        latency_ms: int = 0,
        seed: int = 0,
        username: str = "admin",
        password: str = "simulated-password",
        aws_process: bool = False,
    ) -> None:
        self.workers = workers
        self.regions = list(regions or DEFAULT_REGIONS)
        self.stopped = stopped
        self.latency_ms = latency_ms
        self.seed = seed
        self.username = username
        self.password = password
        self.instances: list[SeededInstance] = []
        self.cml = CMLSimulator(username=username, password=password, seed=seed)
        self.aws_endpoint_url = ""
        self.aws_process = aws_process  # moto in a process of its own (MotoProcess)
        self._moto: ThreadedMotoServer | MotoProcess | None = None
        self._metric_drift = MetricDrift(random.Random(seed))

    def start(self) -> None:
        """Start moto and seed it, start the CML server with one worker per instance, and
        publish a first round of metrics. Stopped instances get a CML worker too: the product
        simply should not call it."""
        try:
            if self.aws_process:
                self._moto = MotoProcess()
                self.aws_endpoint_url = self._moto.endpoint_url
            else:
                self._moto, self.aws_endpoint_url = start_moto_server()
            self.instances = seed_instances(
                self.aws_endpoint_url,
                count=self.workers,
                regions=self.regions,
                stopped=self.stopped,
                seed=self.seed,
            )
            self.cml.start()
            for instance in self.instances:
                worker = self.cml.add_worker(instance.instance_id)
                worker.latency_ms = self.latency_ms
                cpus, memory_gib = INSTANCE_SIZES[instance.instance_type]
                worker.cpu_count, worker.memory_total = cpus, memory_gib * 1024**3
            publish_metrics(self.aws_endpoint_url, self.instances, drift=self._metric_drift)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.cml.stop()
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    def __enter__(self) -> "SimulatedFleet":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def environment(self) -> dict[str, str]:
        """The environment variables that point the product at this fleet."""
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_REGIONS": ",".join(self.regions),
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": self.regions[0],
            "CML_ENDPOINT_TEMPLATE": self.cml.endpoint_template,
            "CML_USERNAME": self.username,
            "CML_PASSWORD": self.password,
            "CML_VERIFY_TLS": "false",
        }

    def set_aws_fault(self, instance_id: str, fault: str | None) -> None:
        """Give one instance's EC2 data a fault from AWS_FAULTS, or (None) its own data back."""
        if fault is not None and fault not in AWS_FAULTS:
            raise ValueError(f"fault must be one of {', '.join(AWS_FAULTS)}")
        instance = next(i for i in self.instances if i.instance_id == instance_id)
        name = "N" * 300 if fault == "long_name_tag" else instance.name
        aws_client("ec2", instance.region, self.aws_endpoint_url).create_tags(
            Resources=[instance_id], Tags=[{"Key": "Name", "Value": name}]
        )

    def drift(self) -> None:
        """One step: a new round of metrics, and drift in every CML worker."""
        publish_metrics(self.aws_endpoint_url, self.instances, drift=self._metric_drift)
        self.cml.advance()

    def run_drift(self, interval_s: float, stop_event: threading.Event) -> None:
        """Drift every `interval_s` seconds until `stop_event` is set (the demo's loop)."""
        while not stop_event.wait(interval_s):
            self.drift()
