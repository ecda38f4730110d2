"""Personal API tokens: made by a staff member on their account page, for ``/api/v1/`` and
``/fhir/``. Only a SHA-256 hash is stored; the token is shown once."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy

PREFIX = "bdn_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    class Scope(models.TextChoices):
        READ = "read", gettext_lazy("Read only")
        READ_WRITE = "read_write", gettext_lazy("Read and write")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for.")
    token_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12, help_text="The first characters, to recognise it.")
    scope = models.CharField(max_length=12, choices=Scope.choices, default=Scope.READ)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-pk")

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, user: object, name: str, scope: str, days: int) -> tuple[ApiToken, str]:
        """A new token for ``user``, valid ``days`` days; returns it with the plain token."""
        token = PREFIX + secrets.token_urlsafe(32)
        now = timezone.now()
        row = cls.objects.create(
            user=user,
            name=name,
            token_hash=hash_token(token),
            hint=token[:10],
            scope=scope,
            created_at=now,
            expires_at=now + timedelta(days=days),
        )
        return row, token

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and now < self.expires_at

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.READ_WRITE

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "active" if self.is_usable() else "expired"
