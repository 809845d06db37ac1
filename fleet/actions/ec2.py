"""EC2 calls of the worker actions: one client per region, and AWS refusals in plain words."""

import functools
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from fleet.actions.audit import UpstreamError

# Why EC2 refused, in words an operator can act on (the AWS message follows).
REFUSALS = {
    "IncorrectInstanceState": "EC2 refused: the instance is not in a state that allows this",
    "UnauthorizedOperation": (
        "EC2 refused: this product's AWS identity lacks the IAM permission ec2:{operation}"
    ),
    "AccessDenied": "EC2 refused: this product's AWS identity lacks the IAM permission "
    "ec2:{operation}",
    "RequestLimitExceeded": "EC2 is throttling this account's requests: try again in a minute",
    "Throttling": "EC2 is throttling this account's requests: try again in a minute",
    "InvalidInstanceID.NotFound": "EC2 does not know this instance (terminated long ago?)",
    "InvalidInstanceID.Malformed": "EC2 does not accept this instance id",
}


@functools.cache
def _client(region: str, endpoint_url: str | None) -> Any:
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 3},
        connect_timeout=5,
        read_timeout=20,
    )
    session = boto3.session.Session()  # credentials from boto3's default chain
    return session.client("ec2", region_name=region, endpoint_url=endpoint_url, config=config)


def ec2(region: str) -> Any:
    """The EC2 client of a region (one per process)."""
    return _client(region, settings.AWS_ENDPOINT_URL)


def change_state(operation: str, region: str, instance_id: str) -> tuple[str, str]:
    """StartInstances, StopInstances or TerminateInstances on one instance: (previous state,
    current state) as EC2 answers them."""
    method = {
        "StartInstances": ("start_instances", "StartingInstances"),
        "StopInstances": ("stop_instances", "StoppingInstances"),
        "TerminateInstances": ("terminate_instances", "TerminatingInstances"),
    }[operation]
    answer = _call(operation, region, method[0], InstanceIds=[instance_id])
    change = next(i for i in answer[method[1]] if i["InstanceId"] == instance_id)
    return change["PreviousState"]["Name"], change["CurrentState"]["Name"]


def instance_state(region: str, instance_id: str) -> str | None:
    """The instance's state now (DescribeInstances), None when EC2 no longer knows it."""
    answer = _call(
        "DescribeInstances",
        region,
        "describe_instances",
        Filters=[{"Name": "instance-id", "Values": [instance_id]}],
    )
    for reservation in answer.get("Reservations", []):
        for instance in reservation.get("Instances", []):
            return instance.get("State", {}).get("Name")
    return None


def _call(operation: str, region: str, method: str, **kwargs: Any) -> dict:
    try:
        return getattr(ec2(region), method)(**kwargs)
    except ClientError as error:
        raise UpstreamError(explain(error, operation)) from None
    except BotoCoreError as error:
        raise UpstreamError(f"AWS {region} could not be reached: {error}") from None


def explain(error: ClientError, operation: str) -> str:
    """A ClientError as one sentence: what it means for the operator, then AWS's own words."""
    details = error.response.get("Error", {})
    code = details.get("Code", "")
    said = details.get("Message", "")
    meaning = REFUSALS.get(code, f"EC2 refused ({code})").format(operation=operation)
    return f"{meaning}. AWS said: {said}" if said else f"{meaning}."
