"""Personal API tokens: a user's bearer credential for the JSON API, shown once, stored as a
SHA-256 digest (the token is 256 random bits, so a fast hash is enough), with its last use and
an optional expiry."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

PREFIX = "cfm_"
LAST_USED_GRANULARITY = timedelta(minutes=1)  # last_used_at is written at most this often


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def usable(self) -> "ApiTokenQuerySet":
        """Not expired, and of an active user."""
        now = timezone.now()
        return self.filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now), user__is_active=True
        )

    def issue(self, user, name: str, expires_at=None) -> tuple["ApiToken", str]:
        """Create a token; returns the row and the token itself, which is never stored."""
        token = PREFIX + secrets.token_urlsafe(32)
        row = self.create(
            user=user, name=name, digest=digest(token), hint=token[:8], expires_at=expires_at
        )
        return row, token


class ApiToken(models.Model):
    """One personal API token; it acts as its user, with that user's permissions."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the token.")
    hint = models.CharField(max_length=12, help_text="The token's first characters.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def touch(self) -> None:
        """Record a use, at most once a minute (an UPDATE per request would be waste)."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
