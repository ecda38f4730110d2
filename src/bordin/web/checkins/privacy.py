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

import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.utils.cache import add_never_cache_headers

from bordin.web.i18n import restored, with_language_header

CLIENT_REFERRER_POLICY = "no-referrer"

View = Callable[..., HttpResponse]


def client_page(view: View) -> View:
    """Decorate a client-facing view: never cached, no referrer; a language or time zone the
    view activates for the client (:func:`bordin.web.i18n.activate_for_client`) ends with it."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # The view may switch to the client's language and time zone (web.i18n).
        with restored():
            response = with_language_header(view(request, *args, **kwargs))
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
    request.session[LINK_STARTED_KEY] = int(time.time())
    request.session.pop(done_key, None)
    # The cookie dies with the absolute limit too (renewals cannot stretch the check below).
    request.session.set_expiry(link_session_seconds())
    get_token(request)


#: Session key: when (Unix seconds) the link was followed.
LINK_STARTED_KEY = "bordin_link_started_at"


def link_session_seconds() -> int:
    """The absolute lifetime of a client's link session (``BORDIN_LINK_SESSION_MINUTES``)."""
    return max(60, int(settings.BORDIN_LINK_SESSION_MINUTES) * 60)


def link_session_alive(request: HttpRequest) -> bool:
    """Whether the link session is younger than its absolute limit; if not, it is ended.

    Client link sessions do not live on while they are used (the staff idle timeout renews on
    every view): the thank-you page with its risk text and goals must not stay reachable on a
    shared device (issue 15).
    """
    started = request.session.get(LINK_STARTED_KEY)
    if isinstance(started, int) and time.time() - started < link_session_seconds():
        return True
    request.session.flush()
    return False


def end_link_session(request: HttpRequest) -> None:
    """End the client's link session (after the thank-you page was shown once)."""
    request.session.flush()
