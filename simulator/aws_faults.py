"""EC2 refusals moto cannot produce (it has no IAM and never throttles): answer one operation
of one boto3 client with an EC2 error document, parsed by botocore as AWS's own would be."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.awsrequest import AWSResponse


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.data


@contextmanager
def ec2_refuses(client: Any, operation: str, code: str, message: str, status: int = 400):
    """While inside, every `operation` (e.g. "StopInstances") of `client` fails with `code`."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
        "<RequestID>simulated</RequestID></Response>"
    ).encode()

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        return AWSResponse(request.url, status, {}, _Body(body))

    event = f"before-send.ec2.{operation}"
    client.meta.events.register_first(event, answer)
    try:
        yield
    finally:
        client.meta.events.unregister(event, answer)
