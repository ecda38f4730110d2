"""Response headers for every page a client sees without an account (check-in links), and
the session that follows a link.

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
from django.middleware.csrf import get_token
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


def start_link_session(request: HttpRequest, link_key: str, link_pk: int, done_key: str) -> None:
    """Keep a followed link in the browser's session (the token then leaves the URL).

    A session id the browser already had (a staff session on a shared computer, an earlier
    link) is never reused. The form's CSRF secret is stored now, in the same session write, so
    opening the form right after does not write the session again.
    """
    if not request.session.is_empty():
        request.session.cycle_key()
    request.session[link_key] = link_pk
    request.session.pop(done_key, None)
    get_token(request)
