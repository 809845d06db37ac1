"""Small typed readers for settings that come from the environment.

Each one rejects a nonsense value at start-up with a message naming the variable, so a typo in a
deployment fails loudly instead of running with a surprising default.
"""

import os
import ssl

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_tags(name: str) -> dict[str, str]:
    """`KEY=VALUE,KEY=VALUE` as a dict; an item without `=` or without a key is refused."""
    tags = {}
    for item in env_list(name, []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ImproperlyConfigured(f"{name}: {item!r} is not KEY=VALUE")
        tags[key.strip()] = value.strip()
    return tags


def env_ca_bundle(name: str) -> str | None:
    """A PEM file of CA certificates, or None when unset; checked now (readable, and holding at
    least one certificate) so that a bad path stops start-up rather than every TLS handshake."""
    path = env_str(name).strip()
    if not path:
        return None
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError:
        raise ImproperlyConfigured(f"{name}={path!r}: no PEM CA certificate in the file") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise ImproperlyConfigured(f"{name}={path!r}: cannot read the file ({reason})") from None
    return path


def known_ec2_regions() -> set[str]:
    """Every EC2 region of every partition in botocore's bundled endpoint data (no network)."""
    import botocore.session

    session = botocore.session.get_session()
    return {
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("ec2", partition)
    }
