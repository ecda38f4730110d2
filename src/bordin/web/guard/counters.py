"""Fixed-window counters kept in the database, so every worker process and host sees one count.

Django's default cache is per process: with three gunicorn workers a limit of 20 was really 60,
and a lockout or a block held only in the worker that happened to count it. The database is
the one store every worker of an installation already shares (issue 15).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from bordin.web.guard.models import RateCounter
from bordin.web.prepared import Converted, PreparedQuery

#: :func:`current`'s query, compiled once per connection: every link lookup runs it (issue 10).
_CURRENT = PreparedQuery(
    RateCounter,
    lambda key, now: (
        RateCounter.objects.filter(key=key, window_ends__gt=now)
        .order_by("key")
        .values_list("count")[:1]
    ),
    "prepared-query-no-counter",
    Converted(datetime(1901, 2, 3, 4, 5, 6, 789012, tzinfo=UTC), "window_ends"),
)


def current(key: str) -> int:
    """The count in the key's current window (0 when none is open)."""
    rows = _CURRENT.tuples(key, timezone.now())
    return int(rows[0][0] or 0) if rows else 0


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
