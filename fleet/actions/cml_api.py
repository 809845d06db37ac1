"""CML calls of the lab and licence actions: synchronous httpx, the shared (encrypted) token
cache, one re-authentication on 401, and CML's own refusal message passed on."""

from typing import Any

import httpx
from django.conf import settings

from fleet.actions.audit import UpstreamError
from fleet.collection.sources.cml import API, tls_context
from fleet.collection.token_cache import load_tokens, save_tokens
from fleet.models import Worker, WorkerStatus


class CMLApi:
    """One worker's CML API for one action."""

    def __init__(self, worker: Worker, transport: httpx.BaseTransport | None = None) -> None:
        if worker.status != WorkerStatus.RUNNING or not worker.cml_endpoint:
            raise UpstreamError(f"CML on {worker} cannot be reached: the worker is not running")
        self.endpoint = worker.cml_endpoint
        self.timeout = settings.CML_REQUEST_TIMEOUT_SECONDS
        self.client = httpx.Client(
            base_url=self.endpoint.rstrip("/") + API,
            verify=tls_context(settings.CML_VERIFY_TLS, settings.CML_CA_BUNDLE),
            timeout=self.timeout,
            transport=transport,
        )

    def __enter__(self) -> "CMLApi":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authenticated request; a refusal raises UpstreamError with CML's description."""
        tokens = load_tokens()
        token = tokens.get(self.endpoint) or self._authenticate(tokens)
        response = self._send(method, path, token, **kwargs)
        if response.status_code == 401:
            response = self._send(method, path, self._authenticate(tokens), **kwargs)
        if response.status_code >= 400:
            raise UpstreamError(f"CML refused ({response.status_code}): {_said(response)}")
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(f"CML answered {path} with invalid JSON") from None

    def _authenticate(self, tokens: dict[str, str]) -> str:
        credentials = {"username": settings.CML_USERNAME, "password": settings.CML_PASSWORD}
        response = self._request("POST", "/authenticate", json=credentials)
        if response.status_code != 200:
            raise UpstreamError(f"CML refused the sign-in ({response.status_code})")
        token = response.json()
        tokens[self.endpoint] = token
        save_tokens(tokens)
        return token

    def _send(self, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return self._request(method, path, headers=headers, **kwargs)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise UpstreamError(f"CML did not answer {path} within {self.timeout} s") from None
        except httpx.HTTPError as error:
            reason = str(error) or type(error).__name__
            raise UpstreamError(f"CML at {self.endpoint} cannot be reached: {reason}") from None


def _said(response: httpx.Response) -> str:
    """CML's own words: the description of its error body, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(body, dict) and body.get("description"):
        return str(body["description"])[:500]
    return str(body)[:200]
