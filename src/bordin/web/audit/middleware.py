"""Refusals go to the audit log: every 403, and anonymous requests for staff pages.

A 403 means the user's role does not open the page (a researcher on ``/alerts/``, a therapist
on ``/audit/``), or a form came without a valid CSRF token. An anonymous request for a staff
page is the redirect to the log-in page. Both are recorded as ``denied`` with the path; an
anonymous event has no clinic and shows in the site operator's view of the log (superusers,
``/audit/``).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import resolve_url

from bordin.web.audit import log


def _to_login(response: HttpResponseBase) -> bool:
    if response.status_code != 302:
        return False
    login = str(resolve_url(settings.LOGIN_URL))
    return str(response.get("Location", "")).startswith(login + "?")


class RefusalAuditMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if response.status_code == 403:
            log.record(request, log.Action.DENIED, object_type="page", detail="403 refused")
        elif not getattr(user, "is_authenticated", False) and _to_login(response):
            log.record(
                request,
                log.Action.DENIED,
                object_type="page",
                detail="anonymous request for a staff page",
            )
        return response
