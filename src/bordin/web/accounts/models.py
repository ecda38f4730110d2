"""Per-user session epoch: "log out everywhere" increments it and every older session ends."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F


class SessionEpoch(models.Model):
    """The number of times the user ended all their sessions (no row: 0).

    Each session remembers the epoch it was created in (:data:`SESSION_KEY`); the session
    middleware ends a session whose epoch is no longer the user's current one.
    """

    SESSION_KEY = "bordin_session_epoch"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="session_epoch",
    )
    epoch = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.epoch}"

    @classmethod
    def current(cls, user: Any) -> int:
        found = cls.objects.filter(user_id=user.pk).values_list("epoch", flat=True).first()
        return found or 0

    @classmethod
    def advance(cls, user: Any) -> int:
        """Start a new epoch for ``user``: every existing session of theirs becomes invalid."""
        row, created = cls.objects.get_or_create(user_id=user.pk, defaults={"epoch": 1})
        if not created:
            cls.objects.filter(pk=row.pk).update(epoch=F("epoch") + 1)
        return cls.current(user)
