"""Django's database sessions, read with a query compiled once per connection (issue 10).

Every request that carries a session cookie reads its session row: through the ORM that cost
more CPU than the rest of a bare request. The row, the condition (the key, not expired) and
everything else are Django's own (``django.contrib.sessions.backends.db``); only the read
and the check that a new key is unused go through :class:`~bordin.web.prepared.PreparedQuery`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from bordin.web.prepared import Converted, PreparedQuery

_SESSION = PreparedQuery(
    Session,
    lambda key, now: Session.objects.filter(session_key=key, expire_date__gt=now)[:1],
    "prepared-query-no-session-key",
    Converted(datetime(1901, 2, 3, 4, 5, 6, 789012, tzinfo=UTC), "expire_date"),
)

_EXISTS = PreparedQuery(
    Session,
    lambda key: Session.objects.filter(session_key=key).values_list("session_key")[:1],
    "prepared-query-no-session-key",
)


class SessionStore(DatabaseSessionStore):
    def exists(self, session_key: str) -> bool:
        # A new session's key is checked to be unused: as Django's, expired rows included.
        return bool(_EXISTS.tuples(session_key)) if session_key else super().exists(session_key)

    def _get_session_from_db(self) -> Any:
        key = self.session_key
        found = _SESSION.first(key, timezone.now()) if key else None
        if found is None:
            # As Django's: an unknown or expired key is dropped (a new one is made on save).
            self._session_key = None
        return found
