"""CML tokens shared by every process through the database cache, encrypted at rest.

A token acts as the one CML account on its worker, so the cache row holds only Fernet ciphertext
under a key derived from `SECRET_KEY`. A value that does not decrypt (the key was rotated, or an
older release stored it in plain text) counts as no tokens: the workers are signed in again.
"""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.cache import cache

CACHE_KEY = "fleet:cml-tokens"
CACHE_SECONDS = 12 * 3600


def load_tokens() -> dict[str, str]:
    """The cached tokens (CML endpoint → token), or none if they cannot be read."""
    sealed = cache.get(CACHE_KEY)
    if not isinstance(sealed, bytes):
        return {}
    try:
        tokens = json.loads(_fernet().decrypt(sealed))
    except (InvalidToken, ValueError):
        return {}
    return tokens if isinstance(tokens, dict) else {}


def save_tokens(tokens: dict[str, str]) -> None:
    cache.set(CACHE_KEY, _fernet().encrypt(json.dumps(tokens).encode()), CACHE_SECONDS)


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"fleet-cml-tokens:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))
