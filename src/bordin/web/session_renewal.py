"""The idle timeout: a session lives ``SESSION_COOKIE_AGE`` seconds after its last request.

Django can renew every session on every request (``SESSION_SAVE_EVERY_REQUEST``), but that is
a database write per page view, including the check-in form a client has just been sent to.
:class:`SessionRenewalMiddleware` renews a session only when its last renewal is
``BORDIN_SESSION_RENEW_SECONDS`` (default 60) or more ago: a session still ends after at most
``SESSION_COOKIE_AGE`` seconds without a request, up to that much sooner, never later.
A session saved for any other reason (a log-in, a followed link) counts as renewed. Sessions
without data (a visitor who never logged in or followed a link) are not touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

#: Session key holding the time (Unix seconds) of the last renewal.
RENEWED_AT_KEY = "_bordin_renewed_at"


class SessionRenewalMiddleware:
    """Must come right after Django's ``SessionMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        session = request.session
        now = int(time.time())
        if not session.is_empty() and session.keys() - {RENEWED_AT_KEY}:
            renewed = session.get(RENEWED_AT_KEY)
            due = (
                not isinstance(renewed, int)
                or now - renewed >= settings.BORDIN_SESSION_RENEW_SECONDS
            )
            if due:
                session.modified = True  # SessionMiddleware saves it, with a new expiry
        response = self.get_response(request)
        if session.modified and not session.is_empty():
            session[RENEWED_AT_KEY] = now  # saved (and so renewed) now anyway: note when
        return response
