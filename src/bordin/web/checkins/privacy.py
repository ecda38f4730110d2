"""Response headers for every page a client sees without an account (check-in links).

* ``Cache-Control: no-store`` (with Django's other never-cache headers): a shared or public
  device keeps no copy of a check-in page, its answers or the crisis contacts shown.
* ``Referrer-Policy: no-referrer``: a client page never sends its URL anywhere, not even to
  Bordin's own static files (a reverse proxy's access log records referrers). Browsers then
  send ``Origin: null`` with the forms' POSTs; :mod:`bordin.web.csrf` accepts that for client
  forms only, with the session-bound CSRF token still required.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

CLIENT_REFERRER_POLICY = "no-referrer"

View = Callable[..., HttpResponse]


def client_page(view: View) -> View:
    """Decorate a client-facing view: never cached, no referrer."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        response.headers.setdefault("Referrer-Policy", CLIENT_REFERRER_POLICY)
        return response

    return wrapped
