"""CML tokens shared by every process through the database cache, encrypted at rest.

A token acts as the one CML account on its worker, so the cache row holds only Fernet ciphertext
under a key derived from `SECRET_KEY`. A value that does not decrypt (the key was rotated, or an
older release stored it in plain text) counts as no tokens: the workers are signed in again.
"""

import json

from cryptography.fernet import InvalidToken
from django.core.cache import cache

from fleet.secrets import fernet

CACHE_KEY = "fleet:cml-tokens"
CACHE_SECONDS = 12 * 3600


def load_tokens() -> dict[str, str]:
    """The cached tokens (CML endpoint → token), or none if they cannot be read."""
    sealed = cache.get(CACHE_KEY)
    if not isinstance(sealed, bytes):
        return {}
    try:
        tokens = json.loads(fernet("cml-tokens").decrypt(sealed))
    except (InvalidToken, ValueError):
        return {}
    return tokens if isinstance(tokens, dict) else {}


def save_tokens(tokens: dict[str, str]) -> None:
    cache.set(CACHE_KEY, fernet("cml-tokens").encrypt(json.dumps(tokens).encode()), CACHE_SECONDS)
