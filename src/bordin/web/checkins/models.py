"""Private, single-use check-in links. Only a SHA-256 hash of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, Self

from django.conf import settings
from django.db import models
from django.db.models import QuerySet
from django.utils import timezone

from bordin.web.clinic.models import Client, Episode, Session
from bordin.web.prepared import PreparedQuery

#: No token hashes to this (not hexadecimal): :meth:`SecureLink.find`'s query is compiled with it.
NO_HASH = "prepared-query-no-token-hash"
#: :meth:`SecureLink.find`'s query for each kind of link, compiled once per connection.
_FIND: dict[type[models.Model], PreparedQuery[Any]] = {}


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token; the token itself is never stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class SecureLink(models.Model):
    """What every private client link shares: a 256-bit token shown once and stored only as a
    SHA-256 hash, an expiry, revocation and single use (check-ins and journey steps)."""

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
        abstract = True

    @classmethod
    def create_with_token(cls, *, hours: int, **fields: object) -> tuple[Self, str]:
        """Create a link valid for ``hours`` and return it with its one-time plain token."""
        token = secrets.token_urlsafe(32)  # 256 bits
        now = timezone.now()
        link = cls._default_manager.create(
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(hours=hours),
            **fields,
        )
        return link, token

    @classmethod
    def find(cls, token: str) -> Self | None:
        """The link for a token, whatever its state; ``None`` for an unknown token."""
        if not token or len(token) > 200:
            return None
        query = _FIND.get(cls)
        if query is None:
            query = _FIND[cls] = PreparedQuery(cls, cls._by_hash, NO_HASH)
        return query.first(hash_token(token))

    @classmethod
    def _by_hash(cls, token_hash: str) -> QuerySet[Self]:
        # The hash is unique: no ORDER BY to compile (issue 10).
        return (
            cls._default_manager.select_related("client__clinic", "episode", "session")
            .filter(token_hash=token_hash)
            .order_by()[:1]
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


class CheckinLink(SecureLink):
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="checkin_links")
    episode = models.ForeignKey(Episode, on_delete=models.CASCADE, related_name="checkin_links")
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="checkin_links")

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
        return cls.create_with_token(
            hours=hours if hours is not None else settings.BORDIN_CHECKIN_LINK_HOURS,
            client=session.episode.client,
            episode=session.episode,
            session=session,
            created_by=created_by,
        )
