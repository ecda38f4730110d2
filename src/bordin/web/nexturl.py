"""``next`` parameters: a path on this site, or nothing.

``url_has_allowed_host_and_scheme`` accepts ``NaN`` (a relative reference), and Django's
``redirect()`` then takes it for a URL pattern name and fails with ``NoReverseMatch``, a 500
after the action was already saved (issue 15). A ``next`` here must also be *path-only*: start
with one ``/`` (not ``//`` or ``/\\``), with no scheme or host.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request: HttpRequest, value: str | None) -> str | None:
    """``value`` if it is a path on this site, otherwise ``None``.

    >>> from django.test import RequestFactory
    >>> request = RequestFactory().get("/")
    >>> [safe_next(request, v) for v in ["/alerts/", "NaN", "//evil.example", "/\\\\evil"]]
    ['/alerts/', None, None, None]
    """
    if not value or not value.startswith("/") or value[1:2] in ("/", "\\"):
        return None
    if not url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return None
    return value
