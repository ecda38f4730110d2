"""Rate limit for check-in link lookups, per client address, in Django's cache.

Only *failed* lookups count (an unknown, tampered, expired, revoked or used token): several
clients checking in from one address (a clinic's guest Wi-Fi) do not lock each other out,
while guessing tokens stops after ``BORDIN_CHECKIN_RATE_LIMIT`` tries per
``BORDIN_CHECKIN_RATE_WINDOW_SECONDS``. Once over the limit, **every** lookup from that address
answers 429 before the token is looked at, so the answer says nothing about the token.
IPv6 addresses count per /64 network (one subscriber's usual allocation).

The default cache is per process: with several worker processes the effective limit is the
limit times the number of workers (see ``docs/security.md``).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from bordin.web.audit.log import client_ip


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
    return int(cache.get(_key(request), 0)) >= limit()


def record_failure(request: HttpRequest) -> None:
    """Count one failed lookup (the window starts with the first failure)."""
    if limit() <= 0:
        return
    key = _key(request)
    cache.add(key, 0, timeout=window())
    try:
        cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout=window())
