"""The simulated AWS: seeded EC2 instances and CloudWatch metrics on moto's server, via boto3."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from simulator.aws import (
    MetricDrift,
    SeededInstance,
    aws_client,
    publish_metrics,
    seed_instances,
    start_moto_server,
)

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def aws():
    """(endpoint_url, instances, points written) for 24 instances, 3 of them stopped."""
    server, endpoint_url = start_moto_server()
    try:
        instances = seed_instances(endpoint_url, count=24, regions=REGIONS, stopped=3, seed=0)
        written = publish_metrics(endpoint_url, instances, rng=random.Random(0), when=NOW)
        yield endpoint_url, instances, written
    finally:
        server.stop()


def describe(endpoint_url: str, region: str) -> dict[str, dict]:
    pages = aws_client("ec2", region, endpoint_url).get_paginator("describe_instances").paginate()
    return {
        instance["InstanceId"]: instance
        for page in pages
        for reservation in page["Reservations"]
        for instance in reservation["Instances"]
    }


def metric_values(
    endpoint_url: str, region: str, namespace: str, metric: str, instance_ids: list[str]
) -> dict[str, list[float]]:
    queries = [
        {
            "Id": f"q{n}",
            "MetricStat": {
                "Metric": {
                    "Namespace": namespace,
                    "MetricName": metric,
                    "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                },
                "Period": 300,
                "Stat": "Average",
            },
        }
        for n, instance_id in enumerate(instance_ids)
    ]
    results = aws_client("cloudwatch", region, endpoint_url).get_metric_data(
        MetricDataQueries=queries,
        StartTime=NOW - timedelta(minutes=10),
        EndTime=NOW + timedelta(minutes=1),
    )["MetricDataResults"]
    return {instance_ids[int(r["Id"][1:])]: r["Values"] for r in results}


def in_region(instances: list[SeededInstance], region: str) -> list[SeededInstance]:
    return [i for i in instances if i.region == region]


def test_seeding_spreads_named_instances_over_the_regions(aws):
    _, instances, _ = aws

    assert [i.name for i in instances] == [f"cml-worker-{n:02d}" for n in range(1, 25)]
    assert {region: len(in_region(instances, region)) for region in REGIONS} == dict.fromkeys(
        REGIONS, 8
    )
    assert sum(not i.running for i in instances) == 3
    assert sum(not i.has_agent for i in instances) == 4


def test_describe_instances_returns_the_seeded_instances_with_tags_and_states(aws):
    endpoint_url, instances, _ = aws

    for region in REGIONS:
        described = describe(endpoint_url, region)
        assert set(described) == {i.instance_id for i in in_region(instances, region)}
        for seeded in in_region(instances, region):
            instance = described[seeded.instance_id]
            tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
            assert tags["Name"] == seeded.name and tags["Role"] == "cml-worker"
            assert {"Environment", "Team"} <= set(tags)
            assert instance["State"]["Name"] == ("running" if seeded.running else "stopped")
            assert instance["InstanceType"] == seeded.instance_type
            assert instance["PrivateIpAddress"]
            assert ("PublicIpAddress" in instance) == seeded.running  # as in AWS


def test_describe_instance_status_includes_stopped_instances(aws):
    endpoint_url, instances, _ = aws

    for region in REGIONS:
        seeded = {i.instance_id: i for i in in_region(instances, region)}
        statuses = aws_client("ec2", region, endpoint_url).describe_instance_status(
            IncludeAllInstances=True, InstanceIds=list(seeded)
        )["InstanceStatuses"]
        assert {s["InstanceId"] for s in statuses} == set(seeded)
        for status in statuses:
            running = seeded[status["InstanceId"]].running
            assert status["InstanceState"]["Name"] == ("running" if running else "stopped")
            # moto: running instances always pass both checks; stopped ones are not-applicable
            expected = "ok" if running else "not-applicable"
            assert (
                status["InstanceStatus"]["Status"] == status["SystemStatus"]["Status"] == expected
            )


def test_cpu_utilization_has_a_point_for_each_running_instance(aws):
    endpoint_url, instances, written = aws
    running_with_agent = [i for i in instances if i.running and i.has_agent]

    assert written == sum(i.running for i in instances) + 2 * len(running_with_agent)
    for region in REGIONS:
        ids = [i.instance_id for i in in_region(instances, region)]
        values = metric_values(endpoint_url, region, "AWS/EC2", "CPUUtilization", ids)
        for instance in in_region(instances, region):
            if instance.running:
                assert len(values[instance.instance_id]) == 1
                assert 0 <= values[instance.instance_id][0] <= 100
            else:
                assert values[instance.instance_id] == []


@pytest.mark.parametrize("metric", ["mem_used_percent", "disk_used_percent"])
def test_cwagent_metrics_exist_only_where_the_agent_runs(aws, metric):
    endpoint_url, instances, _ = aws
    assert any(i.running and not i.has_agent for i in instances)  # the case below is exercised

    for region in REGIONS:
        ids = [i.instance_id for i in in_region(instances, region)]
        values = metric_values(endpoint_url, region, "CWAgent", metric, ids)
        for instance in in_region(instances, region):
            expected_points = 1 if instance.running and instance.has_agent else 0
            assert len(values[instance.instance_id]) == expected_points
            assert all(0 <= value <= 100 for value in values[instance.instance_id])


def test_metric_drift_continues_each_instance_walk():
    drift = MetricDrift(random.Random(3))

    first = drift.step("i-0abc")
    second = drift.step("i-0abc")

    assert first != second
    assert all(abs(second[key] - first[key]) < 40 for key in ("cpu", "mem", "disk"))
    assert MetricDrift(random.Random(3)).step("i-0abc") == first
