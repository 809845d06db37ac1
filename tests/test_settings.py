import os
import subprocess
import sys

import pytest

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-key-" + "x" * 40,
    "ALLOWED_HOSTS": "fleet.example.com",
    "DATABASE_URL": "sqlite:///:memory:",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_COOKIES"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_under_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS"])
def test_it_refuses_to_start_without_secret_key_or_allowed_hosts(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert f"{missing} must be set when DEBUG is off" in result.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("POLL_INTERVAL_SECONDS", "30", "multiple of 60 seconds, at least 60"),
        ("LABS_INTERVAL_SECONDS", "90", "multiple of 60 seconds, at least 60"),
        ("COLLECT_CONCURRENCY", "many", "is not an integer"),
        ("DEBUG", "maybe", "is not a boolean"),
        ("AWS_REGIONS", "us-east-1,mars-north-9x", "is not an AWS region name"),
        ("AWS_REGIONS", "us-east-1,us-east-9", "not an EC2 region this boto3 knows"),
        ("CML_ENDPOINT_TEMPLATE", "https://cml.example.com", "must contain {public_ip}"),
        ("SESSION_HOURS", "0", "SESSION_HOURS=0 must be at least 1"),
        ("SESSION_HOURS", "half a day", "is not an integer"),
        ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT=0 must be at least 1"),
        ("LOGIN_COOLOFF_MINUTES", "0", "LOGIN_COOLOFF_MINUTES=0 must be at least 1"),
        ("EMAIL_PORT", "smtp", "is not an integer"),
        ("EMAIL_USE_TLS", "sometimes", "is not a boolean"),
        ("AWS_DEADLINE_SECONDS", "1", "AWS_DEADLINE_SECONDS=1 must be at least 5"),
        ("AWS_DEADLINE_SECONDS", "soon", "is not an integer"),
        ("CML_MAX_RESPONSE_BYTES", "1000", "CML_MAX_RESPONSE_BYTES=1000 must be at least 100000"),
    ],
)
def test_it_rejects_nonsense_settings_with_a_clear_message(name, value, message):
    result = _manage("check", **{**PRODUCTION, name: value})
    assert result.returncode != 0
    assert message in result.stderr


def test_migrations_match_the_models():
    result = _manage("makemigrations", "--check", "--dry-run", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def _setting(name: str, **env: str) -> str:
    code = f"from django.conf import settings; print(settings.{name})"
    result = _manage("shell", "--no-imports", "-c", code, **{**PRODUCTION, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_sessions_last_session_hours():
    assert _setting("SESSION_COOKIE_AGE") == str(12 * 3600)
    assert _setting("SESSION_COOKIE_AGE", SESSION_HOURS="2") == "7200"


@pytest.mark.parametrize(("email_host", "routed"), [("", False), ("smtp.example.com", True)])
def test_password_reset_is_routed_only_when_mail_is_configured(email_host, routed):
    code = (
        "from django.urls import NoReverseMatch, reverse\n"
        "for name in ['password_reset', 'admin_password_reset']:\n"
        "    try: print(name, reverse(name))\n"
        "    except NoReverseMatch: print(name, None)"
    )
    result = _manage(
        "shell", "--no-imports", "-c", code, **{**PRODUCTION, "EMAIL_HOST": email_host}
    )
    assert result.returncode == 0, result.stderr
    expected = (
        "password_reset /accounts/password_reset/\nadmin_password_reset /admin/password_reset/"
        if routed
        else "password_reset None\nadmin_password_reset None"
    )
    assert result.stdout.strip() == expected
