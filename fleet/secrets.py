"""Encryption at rest for the secrets the product keeps (CML tokens in the shared cache, Apprise
URLs of alert channels): Fernet under a key derived from `SECRET_KEY`, one key per purpose, so
a value sealed for one use never opens as another."""

import base64
import hashlib

from cryptography.fernet import Fernet
from django.conf import settings


def fernet(purpose: str) -> Fernet:
    """The Fernet for one purpose ("cml-tokens", "alert-channels"); rotating `SECRET_KEY` makes
    every sealed value unreadable (callers treat that as "not set")."""
    digest = hashlib.sha256(f"fleet-{purpose}:".encode() + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))
