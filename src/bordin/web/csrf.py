"""CSRF protection that lets client pages keep ``Referrer-Policy: no-referrer``.

Under ``no-referrer`` a browser sends ``Origin: null`` with a form's POST (Fetch standard,
"serialize a request origin"), and Django's origin check refuses ``null``. Client pages (the
check-in and journey forms a client reaches by a private link) must send no referrer, so for
those paths only, :class:`ClientFormCsrfMiddleware` accepts ``Origin: null`` when

* the browser does not say the request is cross-site: ``Sec-Fetch-Site`` is ``same-origin`` or
  absent (Safari before 16.4 does not send it); a sandboxed frame or a ``data:`` page on another
  site posts with ``Sec-Fetch-Site: cross-site`` and is refused; and
* the CSRF token still matches. Tokens live in the server-side session
  (``CSRF_USE_SESSIONS = True``), not in a cookie, so another site — or a sibling subdomain that
  could set cookies — can neither read nor plant one. This is the check that stops forgery; the
  origin check Django adds on top is defence in depth, which the header rule above keeps.

Every other path, and every other ``Origin`` value, goes through Django's checks unchanged.

Django's deployment check ``security.W003`` looks for its own class by name in ``MIDDLEWARE``
and cannot see a subclass, so settings silence it and :func:`check_csrf_middleware` (id
``bordin.E003``) takes its place: it fails unless this middleware, or Django's, is installed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware

#: Paths of forms a client reaches by a private link (no account, ``no-referrer``).
CLIENT_FORM_PREFIXES = ("/c/", "/j/")
SAFE_FETCH_SITES = ("same-origin", None)


def is_client_form_post(request: HttpRequest) -> bool:
    return request.path.startswith(CLIENT_FORM_PREFIXES)


class ClientFormCsrfMiddleware(CsrfViewMiddleware):
    """Django's CSRF middleware, plus ``Origin: null`` from same-site client forms."""

    def _origin_verified(self, request: HttpRequest) -> bool:
        if (
            request.META.get("HTTP_ORIGIN") == "null"
            and is_client_form_post(request)
            and request.META.get("HTTP_SEC_FETCH_SITE") in SAFE_FETCH_SITES
        ):
            return True  # the session-bound token is still checked after this
        return bool(super()._origin_verified(request))  # type: ignore[misc]  # not in the stubs


CSRF_MIDDLEWARE = (
    "bordin.web.csrf.ClientFormCsrfMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
)


@checks.register(checks.Tags.security, deploy=True)
def check_csrf_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Stand-in for Django's ``security.W003``, which cannot recognise a subclass."""
    if any(name in settings.MIDDLEWARE for name in CSRF_MIDDLEWARE):
        return []
    return [
        checks.Error(
            "No CSRF middleware is installed.",
            hint="Add 'bordin.web.csrf.ClientFormCsrfMiddleware' to MIDDLEWARE.",
            id="bordin.E003",
        )
    ]
