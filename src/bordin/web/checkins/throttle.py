"""Rate limit for check-in link lookups, per client address, in Django's cache.

Only *failed* lookups count (an unknown, tampered, expired, revoked or used token): several
clients checking in from one address (a clinic's guest Wi-Fi) do not lock each other out,
while guessing tokens stops after ``BORDIN_CHECKIN_RATE_LIMIT`` tries per
``BORDIN_CHECKIN_RATE_WINDOW_SECONDS``. Once over the limit, **every** lookup from that address
answers 429 before the token is looked at, so the answer says nothing about the token.
IPv6 addresses count per /64 network (one subscriber's usual allocation).

The counts live in the database (:mod:`bordin.web.guard.counters`), so every worker process
and host shares them. Failed lookups are audited per address and window, never with the token:
one event when an address's first failure opens a window, one when it reaches the limit.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

from bordin.web.audit.log import client_ip, record
from bordin.web.audit.models import AuditEvent
from bordin.web.guard import counters


def _key(request: HttpRequest) -> str:
    raw = client_ip(request) or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return f"bordin:checkin-lookups:{raw}"
    if address.version == 6:
        raw = str(ipaddress.ip_network(f"{address}/64", strict=False))
    return f"bordin:checkin-lookups:{raw}"


def limit() -> int:
    return int(settings.BORDIN_CHECKIN_RATE_LIMIT)


def window() -> int:
    return max(1, int(settings.BORDIN_CHECKIN_RATE_WINDOW_SECONDS))


def blocked(request: HttpRequest) -> bool:
    """Whether this address has used up its failed lookups for the current window."""
    if limit() <= 0:
        return False
    return counters.current(_key(request)) >= limit()


def record_failure(request: HttpRequest, kind: str = "checkin_link") -> None:
    """Count one failed lookup (the window starts with the first failure) and audit it.

    ``kind`` names the link type in the audit log (``checkin_link`` or ``journey_link``).
    """
    count = counters.hit(_key(request), window())
    if count == 1:
        detail = f"failed link lookup; later ones in the next {window()} s are counted"
    elif count == limit():
        detail = f"{count} failed link lookups in {window()} s: limit reached, answering 429"
    else:
        return
    record(request, AuditEvent.Action.DENIED, object_type=kind, detail=detail)
