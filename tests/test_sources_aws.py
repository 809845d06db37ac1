"""The AWS source against moto in-process: batching, vanished ids, metrics, failures."""

import contextlib
import math
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws

from fleet.collection.sources import aws as aws_source
from fleet.collection.sources.aws import AwsReader

UNKNOWN_ID = "i-0123456789abcdef0"
IMAGE_ID = "ami-12c6146b"  # one of moto's built-in AMIs


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


def launch(region: str, count: int = 1, tags: dict[str, str] | None = None) -> list[str]:
    ec2 = boto3.client("ec2", region_name=region)
    tag_list = [{"Key": key, "Value": value} for key, value in (tags or {}).items()]
    specs = [{"ResourceType": "instance", "Tags": tag_list}] if tag_list else []
    reply = ec2.run_instances(
        ImageId=IMAGE_ID,
        MinCount=count,
        MaxCount=count,
        InstanceType="c5.2xlarge",
        TagSpecifications=specs,
    )
    return [instance["InstanceId"] for instance in reply["Instances"]]


def put_metric(region: str, namespace: str, name: str, instance_id: str, points: dict) -> None:
    """points: minutes ago -> value."""
    now = datetime.now(UTC)
    boto3.client("cloudwatch", region_name=region).put_metric_data(
        Namespace=namespace,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": [{"Name": "InstanceId", "Value": instance_id}],
                "Timestamp": now - timedelta(minutes=minutes),
                "Value": value,
            }
            for minutes, value in points.items()
        ],
    )


def operations(reader: AwsReader, region: str) -> Counter:
    """Count every HTTP attempt of a region's clients by operation name."""
    seen: Counter = Counter()
    for client in reader.clients(region):
        client.meta.events.register(
            "request-created", lambda operation_name, **kw: seen.update([operation_name])
        )
    return seen


def test_it_observes_several_regions(aws):
    east = launch("us-east-1", 2, {"Name": "cml-east", "team": "netops"})
    west = launch("eu-west-1", 1, {"Name": "cml-west"})
    put_metric("us-east-1", "AWS/EC2", "CPUUtilization", east[0], {2: 42.5})
    put_metric("us-east-1", "CWAgent", "mem_used_percent", east[0], {2: 61.0})
    put_metric("us-east-1", "CWAgent", "disk_used_percent", east[0], {2: 33.0})

    reader = AwsReader(["us-east-1", "eu-west-1"])
    result = reader.observe({"us-east-1": east, "eu-west-1": west})

    assert set(result) == {"us-east-1", "eu-west-1"}
    assert result["us-east-1"].error is None and result["eu-west-1"].error is None
    first = result["us-east-1"].instances[east[0]]
    assert first.found and first.state == "running"
    assert (first.system_check, first.instance_check) == ("ok", "ok")
    assert first.instance_type == "c5.2xlarge" and first.ami_id == IMAGE_ID
    assert first.private_ip and first.public_ip
    assert first.tags == {"Name": "cml-east", "team": "netops"} and first.name == "cml-east"
    assert (first.cpu_percent, first.memory_percent, first.disk_percent) == (42.5, 61.0, 33.0)
    # No CloudWatch agent data on the others: None, not an error.
    second = result["us-east-1"].instances[east[1]]
    assert (second.cpu_percent, second.memory_percent, second.disk_percent) == (None, None, None)
    assert result["eu-west-1"].instances[west[0]].name == "cml-west"


def test_250_instances_take_three_calls_of_each_describe(aws):
    ids = launch("us-east-1", 250)
    boto3.client("ec2", region_name="us-east-1").stop_instances(InstanceIds=ids[:10])
    reader = AwsReader(["us-east-1"])
    seen = operations(reader, "us-east-1")

    region = reader.observe_region("us-east-1", ids)

    metric_calls = math.ceil(3 * 240 / 500)
    assert seen == {
        "DescribeInstances": 3,
        "DescribeInstanceStatus": 3,
        "GetMetricData": metric_calls,
    }
    assert region.api_calls == 3 + 3 + metric_calls
    assert len(region.instances) == 250
    assert sum(obs.state == "stopped" for obs in region.instances.values()) == 10


def test_a_vanished_id_does_not_fail_its_batch(aws):
    alive, terminated = launch("us-east-1", 2)
    boto3.client("ec2", region_name="us-east-1").terminate_instances(InstanceIds=[terminated])

    region = AwsReader(["us-east-1"]).observe_region("us-east-1", [alive, UNKNOWN_ID, terminated])

    assert region.error is None
    assert list(region.instances) == [alive, UNKNOWN_ID, terminated]
    assert region.instances[alive].state == "running"
    assert region.instances[UNKNOWN_ID].found is False
    assert region.instances[UNKNOWN_ID].state is None
    assert region.instances[terminated].found and region.instances[terminated].state == "terminated"


def test_an_instance_vanishing_between_the_two_describes_is_dropped_from_the_second(aws):
    stays, vanishes = launch("us-east-1", 2)
    reader = AwsReader(["us-east-1"])
    asked = []

    # AWS's answer when an explicit id no longer exists; injected once, after botocore has built
    # the request, for an instance DescribeInstances has just seen.
    def not_found_once(request, **kwargs):
        asked.append(str(request.body))
        if len(asked) == 1:
            body = NOT_FOUND.replace(b"{id}", vanishes.encode())
            return AWSResponse(request.url, 400, {}, _Raw(body))
        return None

    ec2, _ = reader.clients("us-east-1")
    ec2.meta.events.register_first("before-send.ec2.DescribeInstanceStatus", not_found_once)

    region = reader.observe_region("us-east-1", [stays, vanishes])

    assert region.error is None and len(asked) == 2
    assert vanishes in asked[0] and vanishes not in asked[1]
    assert region.instances[stays].system_check == "ok"
    assert region.instances[vanishes].found and region.instances[vanishes].system_check is None


def test_a_stopped_instance_gets_no_metric_query(aws):
    running, stopped = launch("us-east-1", 2)
    boto3.client("ec2", region_name="us-east-1").stop_instances(InstanceIds=[stopped])
    put_metric("us-east-1", "AWS/EC2", "CPUUtilization", stopped, {3: 99.0})
    reader = AwsReader(["us-east-1"])
    queried = []
    _, cloudwatch = reader.clients("us-east-1")
    cloudwatch.meta.events.register(
        "before-parameter-build.cloudwatch.GetMetricData",
        lambda params, **kw: queried.extend(
            q["MetricStat"]["Metric"]["Dimensions"][0]["Value"] for q in params["MetricDataQueries"]
        ),
    )

    region = reader.observe_region("us-east-1", [running, stopped])

    assert queried == [running] * 3  # CPU, memory and disk of the running one only
    assert region.instances[stopped].state == "stopped"
    assert region.instances[stopped].cpu_percent is None


def test_the_newest_point_is_taken(aws):
    (instance_id,) = launch("us-east-1")
    put_metric("us-east-1", "AWS/EC2", "CPUUtilization", instance_id, {11: 10.0, 1: 30.0, 6: 20.0})
    put_metric("us-east-1", "CWAgent", "mem_used_percent", instance_id, {6: 50.0, 12: 40.0})

    observed = AwsReader(["us-east-1"]).observe_region("us-east-1", [instance_id])

    assert observed.instances[instance_id].cpu_percent == 30.0
    assert observed.instances[instance_id].memory_percent == 50.0


def test_metrics_can_be_skipped(aws):
    (instance_id,) = launch("us-east-1")
    reader = AwsReader(["us-east-1"])
    seen = operations(reader, "us-east-1")

    region = reader.observe_region("us-east-1", [instance_id], metrics=False)

    assert "GetMetricData" not in seen and region.api_calls == 2
    assert region.instances[instance_id].state == "running"


def test_an_unreachable_region_fails_alone(aws):
    east = launch("us-east-1")
    west = launch("eu-west-1")
    reader = AwsReader(["us-east-1", "eu-west-1"], max_attempts=2, connect_timeout=1)
    closed_port = _closed_port()

    # moto answers every *.amazonaws.com request in-process; point eu-west-1's EC2 requests at a
    # closed local port instead, so botocore makes (and retries) a real, refused connection.
    def unreachable(request, **kwargs):
        request.url = f"http://127.0.0.1:{closed_port}/"

    ec2_west, _ = reader.clients("eu-west-1")
    ec2_west.meta.events.register_first("before-send", unreachable)

    result = reader.observe({"us-east-1": east, "eu-west-1": west})

    assert result["eu-west-1"].instances == {}
    assert "Could not connect to the endpoint URL" in result["eu-west-1"].error
    assert result["eu-west-1"].api_calls == 2  # the retry counts
    assert result["us-east-1"].error is None
    assert result["us-east-1"].instances[east[0]].state == "running"


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_a_region_that_never_answers_misses_the_deadline_and_the_others_are_kept(aws, silent_port):
    east = launch("us-east-1")
    west = launch("eu-west-1")
    # A read timeout of 600 s is capped at the deadline: the retry after it is refused.
    reader = AwsReader(["us-east-1", "eu-west-1"], deadline=2, read_timeout=600)

    def silent(request, **kwargs):
        request.url = f"http://127.0.0.1:{silent_port}/"

    ec2_west, _ = reader.clients("eu-west-1")
    ec2_west.meta.events.register_first("before-send", silent)

    result = reader.observe({"us-east-1": east, "eu-west-1": west})

    assert result["eu-west-1"].error == "no answer within the AWS deadline of 2s"
    assert result["eu-west-1"].instances == {}
    assert result["us-east-1"].error is None
    assert result["us-east-1"].instances[east[0]].state == "running"


@pytest.fixture
def dripping_port():
    """A loopback server sending one byte every 0.2 s, forever: no read ever times out."""
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.1)
    connections: list[socket.socket] = []

    def drip() -> None:
        while not stop.wait(0.2):
            with contextlib.suppress(OSError):
                connections.append(server.accept()[0])
            for connection in connections:
                with contextlib.suppress(OSError):
                    connection.send(b"H")

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in connections:
        connection.close()
    server.close()


def test_a_region_answering_too_slowly_to_time_out_misses_the_deadline(aws, dripping_port):
    east = launch("us-east-1")
    west = launch("eu-west-1")
    reader = AwsReader(["us-east-1", "eu-west-1"], deadline=2)

    def dripping(request, **kwargs):
        request.url = f"http://127.0.0.1:{dripping_port}/"

    ec2_west, _ = reader.clients("eu-west-1")
    ec2_west.meta.events.register_first("before-send", dripping)

    result = reader.observe({"us-east-1": east, "eu-west-1": west})

    assert result["eu-west-1"].error == "no answer within the AWS deadline of 2s"
    assert result["us-east-1"].instances[east[0]].state == "running"


def test_no_call_or_retry_starts_after_the_deadline(aws):
    (instance_id,) = launch("us-east-1")
    reader = AwsReader(["us-east-1"])
    seen = operations(reader, "us-east-1")

    region = reader.observe_region("us-east-1", [instance_id], until=time.monotonic() - 1)

    assert region.error == "no answer within the AWS deadline of 60s"
    assert region.api_calls == 0 and not seen


def test_an_attempts_timeouts_fit_inside_the_deadline():
    config = AwsReader(["us-east-1"], deadline=3)._config
    assert (config.connect_timeout, config.read_timeout) == (3, 3)


def test_throttling_is_retried(aws):
    (instance_id,) = launch("us-east-1")
    reader = AwsReader(["us-east-1"])
    seen = operations(reader, "us-east-1")
    throttled = []

    # EC2 answers the first DescribeInstances with its real throttling error (HTTP 503,
    # RequestLimitExceeded). The response is injected at before-send, after botocore has built and
    # signed the request, so botocore's own parsing and adaptive retry handle it; the retry then
    # reaches moto's real backend.
    def throttle_once(request, **kwargs):
        if throttled:
            return None
        throttled.append(request.url)
        return AWSResponse(request.url, 503, {}, _Raw(THROTTLED))

    ec2, _ = reader.clients("us-east-1")
    ec2.meta.events.register_first("before-send.ec2.DescribeInstances", throttle_once)

    region = reader.observe_region("us-east-1", [instance_id])

    assert throttled and region.error is None
    assert region.instances[instance_id].state == "running"
    assert seen["DescribeInstances"] == 2
    assert region.api_calls == 2 + 1 + 1  # two DescribeInstances attempts, status, metrics


def test_a_cloudwatch_failure_keeps_the_ec2_data(aws):
    (instance_id,) = launch("us-east-1")
    reader = AwsReader(["us-east-1"])

    def denied(**kwargs):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetMetricData")

    _, cloudwatch = reader.clients("us-east-1")
    cloudwatch.meta.events.register_first("before-send", denied)

    region = reader.observe_region("us-east-1", [instance_id])

    assert region.error is None and "AccessDenied" in region.metrics_error
    assert region.instances[instance_id].state == "running"
    assert region.instances[instance_id].cpu_percent is None


def test_find_instances_by_tag(aws):
    cml = launch("us-east-1", 2, {"Name": "cml", "role": "cml-worker"})
    launch("us-east-1", 1, {"role": "database"})
    gone = launch("us-east-1", 1, {"role": "cml-worker"})
    boto3.client("ec2", region_name="us-east-1").terminate_instances(InstanceIds=gone)

    found = AwsReader(["us-east-1"]).find_instances("us-east-1", tags={"role": "cml-worker"})

    assert sorted(obs.instance_id for obs in found) == sorted(cml)
    assert all(obs.name == "cml" and obs.state == "running" for obs in found)


def test_find_instances_by_id(aws):
    wanted, other = launch("us-east-1", 2)
    reader = AwsReader(["us-east-1"])

    found = reader.find_instances("us-east-1", instance_ids=[wanted, UNKNOWN_ID])

    assert [obs.instance_id for obs in found] == [wanted]
    assert reader.find_instances("us-east-1", instance_ids=[]) == []


THROTTLED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
    b"</Error></Errors><RequestID>5c7f8a5e-throttled</RequestID></Response>"
)

NOT_FOUND = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
    b"<Code>InvalidInstanceID.NotFound</Code>"
    b"<Message>The instance ID '{id}' does not exist</Message>"
    b"</Error></Errors><RequestID>5c7f8a5e-not-found</RequestID></Response>"
)


class _Raw:
    """The raw body botocore reads from an HTTP response."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs):
        yield self.body


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-06T17:05:00.000Z", datetime(2026, 12, 6, 17, 5, tzinfo=UTC)),
        ("2026-12-06T17:05:00+01:00", datetime(2026, 12, 6, 16, 5, tzinfo=UTC)),
        ("2026-12-06T17:05:00", datetime(2026, 12, 6, 17, 5, tzinfo=UTC)),  # naive: UTC
        ("1765040700", datetime(2025, 12, 6, 17, 5, tzinfo=UTC)),  # epoch: botocore's parser
        ("Sat, 06 Dec 2026 17:05:00 GMT", datetime(2026, 12, 6, 17, 5, tzinfo=UTC)),
    ],
)
def test_timestamps_are_aware_and_exact_whatever_their_form(text, expected):
    parsed = aws_source._timestamp(text)

    assert parsed == expected and parsed.tzinfo is not None


def test_the_readers_clients_parse_timestamps_with_the_fast_parser(aws):
    (instance_id,) = launch("us-east-1")

    instance = AwsReader(["us-east-1"]).observe_region("us-east-1", [instance_id]).instances
    launched = instance[instance_id].launched_at

    assert launched.tzinfo is UTC  # dateutil, botocore's own parser, gives its tzutc()
    assert abs(datetime.now(UTC) - launched) < timedelta(minutes=5)
