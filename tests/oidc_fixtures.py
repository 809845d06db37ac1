"""A real OpenID Connect provider on loopback (Node's oidc-provider, tests/node/provider.mjs)
and a daphne configured to sign on with it."""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser_fixtures import ROOT, free_port, start_daphne, stop

NODE_DIR = ROOT / "tests" / "node"
ROLE_MAP = "fleet-viewers=viewer,fleet-operators=operator,fleet-admins=admin"


@dataclass
class Provider:
    issuer: str
    accounts_file: Path

    def set_account(self, login: str, groups: list[str]) -> None:
        """Create or change an account at the provider (read at its next sign-in)."""
        accounts = json.loads(self.accounts_file.read_text())
        accounts[login] = {"email": f"{login}@example.com", "groups": groups}
        self.accounts_file.write_text(json.dumps(accounts))

    def environment(self, client_id: str, secret: str) -> dict[str, str]:
        """The product's OIDC_* settings for this provider."""
        return {
            "OIDC_RP_CLIENT_ID": client_id,
            "OIDC_RP_CLIENT_SECRET": secret,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.issuer}/auth",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.issuer}/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.issuer}/me",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.issuer}/jwks",
            "OIDC_OP_LOGOUT_ENDPOINT": f"{self.issuer}/session/end",
            "OIDC_ROLE_CLAIM": "groups",
            "OIDC_ROLE_MAP": ROLE_MAP,
        }


def _node() -> str:
    node = shutil.which("node")
    missing = "Node.js" if node is None else None
    if node and not (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        missing = "oidc-provider (npm ci --prefix tests/node; make test does it)"
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{missing} is missing: CI must run the single sign-on tests")
        pytest.skip(f"{missing} is not installed")
    return node


def start_provider(port: int, web_url: str, accounts_file: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": "cml-fleet",
        "CLIENT_SECRET": "cml-fleet-test-secret",
        "REDIRECT_URI": f"{web_url}/oidc/callback/",
        "POST_LOGOUT_REDIRECT_URI": f"{web_url}/accounts/login/",
        "ACCOUNTS_FILE": str(accounts_file),
    }
    process = subprocess.Popen(
        [_node(), str(NODE_DIR / "provider.mjs")],
        cwd=NODE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()  # "ready <issuer>", or nothing if it died
    if not line.startswith("ready "):
        process.kill()
        raise RuntimeError(f"oidc-provider did not start: {line}{process.stderr.read()}")
    return process


@pytest.fixture
def sso(transactional_db, fleet_settings, static_root, tmp_path):
    """(the product's base URL, the provider): daphne with OIDC_* pointing at a running
    oidc-provider, both on loopback."""
    web_port, op_port = free_port(), free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    accounts = tmp_path / "accounts.json"
    accounts.write_text("{}")
    provider = Provider(f"http://127.0.0.1:{op_port}", accounts)
    op = start_provider(op_port, web_url, accounts)
    try:
        env = {
            **fleet_settings.environment(),
            "STATIC_ROOT": static_root,
            **provider.environment("cml-fleet", "cml-fleet-test-secret"),
        }
        web = start_daphne(web_port, env)
        try:
            yield web_url, provider
        finally:
            stop(web)
    finally:
        stop(op)
