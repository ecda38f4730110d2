"""Private, single-use check-in links. Only a SHA-256 hash of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from bordin.web.clinic.models import Client, Episode, Session


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token; the token itself is never stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class CheckinLink(models.Model):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="checkin_links")
    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="checkin_links")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="checkin_links")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    used_key = models.CharField(
        max_length=100, blank=True, help_text="Idempotency key of the submission that used it."
    )

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=["session", "expires_at"]),)

    def __str__(self) -> str:
        return f"Check-in link for {self.session} ({self.state})"

    @classmethod
    def issue(
        cls, session: Session, *, created_by: object | None = None, hours: int | None = None
    ) -> tuple[CheckinLink, str]:
        """Create a link for ``session`` and return it with its one-time plain token."""
        token = secrets.token_urlsafe(32)  # 256 bits
        lifetime = hours if hours is not None else settings.BORDIN_CHECKIN_LINK_HOURS
        now = timezone.now()
        link = cls.objects.create(
            client=session.episode.client,
            episode=session.episode,
            session=session,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(hours=lifetime),
            created_by=created_by,
        )
        return link, token

    @classmethod
    def find(cls, token: str) -> CheckinLink | None:
        """The link for a token, whatever its state; ``None`` for an unknown token."""
        if not token or len(token) > 200:
            return None
        return (
            cls.objects.select_related("client__clinic", "episode", "session")
            .filter(token_hash=hash_token(token))
            .first()
        )

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and self.used_at is None and now < self.expires_at

    @property
    def state(self) -> str:
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        if timezone.now() >= self.expires_at:
            return "expired"
        return "open"
