"""The one place where staff sessions are checked, on every request.

:class:`StaffSessionMiddleware` does two things for an authenticated user:

* it ends the session if the user logged out everywhere since it began (its session epoch is
  behind the user's, see :class:`~bordin.web.accounts.models.SessionEpoch`) or if it is older
  than ``BORDIN_SESSION_MAX_HOURS``; the request then goes on as anonymous, so staff pages
  send it to the log-in page;
* it sends a user who has not passed the second factor in this session to
  ``/account/2fa/verify/`` (or ``/account/2fa/setup/`` without an authenticator yet), for
  every URL except the few listed in :data:`EXEMPT_URL_NAMES`.

It must come after Django's ``AuthenticationMiddleware``, django-otp's ``OTPMiddleware`` and
the messages middleware.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import urlencode

from bordin.web.accounts import second_factor
from bordin.web.accounts.models import SessionEpoch

#: URLs open to a password-authenticated user who has not passed the second factor yet: the
#: second-factor pages themselves, logging in and out, and the clients' pages reached by a
#: private link (check-in and journey; no account, and the token must not land in ``next``).
EXEMPT_URL_NAMES = frozenset(
    {
        "login",
        "logout",
        "2fa-setup",
        "2fa-verify",
        "checkin",
        "checkin-start",
        "journey-start",
        "journey-client",
        "journey-client-pdf",
    }
)

#: Session keys written at log-in (:mod:`bordin.web.accounts.signals`).
LOGIN_AT_KEY = "bordin_login_at"


def session_ended(request: HttpRequest, user: Any) -> bool:
    """Whether the session was ended by "log out everywhere" or outlived its maximum age."""
    session = request.session
    started = session.get(LOGIN_AT_KEY)
    max_age = settings.BORDIN_SESSION_MAX_HOURS * 3600
    if not isinstance(started, int | float) or time.time() - started > max_age:
        return True
    return bool(session.get(SessionEpoch.SESSION_KEY) != SessionEpoch.current(user))


class StaffSessionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and session_ended(request, request.user):
            logout(request)
        return self.get_response(request)

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., HttpResponse],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        user = request.user
        if not user.is_authenticated or second_factor.passed(request):
            return None
        match = request.resolver_match
        if match is None or match.view_name in EXEMPT_URL_NAMES:
            return None
        target = "2fa-verify" if second_factor.totp_device(user) else "2fa-setup"
        url = reverse(target)
        if request.method in ("GET", "HEAD"):
            url += "?" + urlencode({"next": request.get_full_path()})
        return HttpResponseRedirect(url)
