"""SimulatedFleet: moto and the CML simulator together, as the demo and benchmarks use them."""

import os
import threading
import time

import httpx

from simulator.aws import INSTANCE_SIZES, aws_client
from simulator.fleet import SimulatedFleet


def test_a_fleet_serves_ec2_and_a_cml_worker_per_instance():
    with SimulatedFleet(workers=6, regions=["us-east-1", "eu-west-1"], stopped=1, seed=2) as fleet:
        env = fleet.environment()

        assert set(env) == {
            "AWS_ENDPOINT_URL", "AWS_REGIONS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION", "CML_ENDPOINT_TEMPLATE", "CML_USERNAME", "CML_PASSWORD",
            "CML_VERIFY_TLS",
        }  # fmt: skip
        assert env["AWS_REGIONS"] == "us-east-1,eu-west-1"
        assert env["CML_VERIFY_TLS"] == "false"
        described = aws_client("ec2", "eu-west-1", env["AWS_ENDPOINT_URL"]).describe_instances()
        assert sum(len(r["Instances"]) for r in described["Reservations"]) == 3
        assert sum(not i.running for i in fleet.instances) == 1
        for instance in fleet.instances:
            base = env["CML_ENDPOINT_TEMPLATE"].format(instance_id=instance.instance_id)
            response = httpx.get(f"{base}/api/v0/system_information")
            assert response.json()["version"] == "2.9.1"
            cpus, memory_gib = INSTANCE_SIZES[instance.instance_type]  # CML agrees with EC2
            worker = fleet.cml.worker(instance.instance_id)
            assert (worker.cpu_count, worker.memory_total) == (cpus, memory_gib * 1024**3)


def test_latency_applies_to_every_worker_and_drift_runs_until_stopped():
    with SimulatedFleet(workers=3, stopped=0, latency_ms=50) as fleet:
        workers = [fleet.cml.worker(i.instance_id) for i in fleet.instances]
        assert [w.latency_ms for w in workers] == [50, 50, 50]
        cpu_before = workers[0].computes[0].cpu_percent
        stop = threading.Event()
        drifting = threading.Thread(target=fleet.run_drift, args=(0.01, stop))
        drifting.start()
        deadline = time.monotonic() + 10
        while workers[0].computes[0].cpu_percent == cpu_before and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        drifting.join(timeout=5)

        assert not drifting.is_alive()
        assert workers[0].computes[0].cpu_percent != cpu_before


def test_the_same_seed_gives_the_same_fleet():
    def snapshot() -> list[tuple[str, bool, list[str]]]:
        with SimulatedFleet(workers=4, stopped=1, seed=5) as fleet:
            return [
                (i.instance_id, i.running, list(fleet.cml.worker(i.instance_id).labs))
                for i in fleet.instances
            ]

    first = snapshot()

    assert snapshot() == first
    assert all(labs for _, _, labs in first)  # every worker starts with at least one lab


def test_aws_can_run_in_a_process_of_its_own_and_stops_with_the_fleet():
    fleet = SimulatedFleet(workers=2, regions=["us-east-1"], stopped=1, aws_process=True)
    with fleet:
        process = fleet._moto._process
        assert process.pid != os.getpid() and process.is_alive()
        ec2 = aws_client("ec2", "us-east-1", fleet.aws_endpoint_url)
        states = [
            i["State"]["Name"]
            for r in ec2.describe_instances()["Reservations"]
            for i in r["Instances"]
        ]
        assert sorted(states) == ["running", "stopped"]
    assert not process.is_alive()
