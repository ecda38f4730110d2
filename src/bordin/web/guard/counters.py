"""Fixed-window counters kept in the database, so every worker process and host sees one count.

Django's default cache is per process: with three gunicorn workers a limit of 20 was really 60,
and a lockout or a block held only in the worker that happened to count it. The database is
the one store every worker of an installation already shares (issue 15).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from bordin.web.guard.models import RateCounter


def current(key: str) -> int:
    """The count in the key's current window (0 when none is open)."""
    row = (
        RateCounter.objects.filter(key=key, window_ends__gt=timezone.now())
        .values_list("count", flat=True)
        .first()
    )
    return int(row or 0)


def hit(key: str, window_seconds: int) -> int:
    """Add one to the key's count and return it; the window starts with the first hit."""
    now = timezone.now()
    with transaction.atomic():
        # Expired windows of every key go here, so the table stays as small as the traffic.
        RateCounter.objects.filter(window_ends__lte=now).delete()
        if RateCounter.objects.filter(key=key).update(count=F("count") + 1):
            return current(key)
        try:
            with transaction.atomic():
                RateCounter.objects.create(
                    key=key, window_ends=now + timedelta(seconds=window_seconds), count=1
                )
            return 1
        except IntegrityError:  # another worker opened the window just now
            RateCounter.objects.filter(key=key).update(count=F("count") + 1)
            return current(key)
