"""At log-in, stamp the session (epoch, time); record lockouts in the audit log."""

from __future__ import annotations

import time
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest

from bordin.web.accounts.middleware import LOGIN_AT_KEY
from bordin.web.accounts.models import SessionEpoch
from bordin.web.audit.signals import record_login_failed
from bordin.web.clinic.models import StaffProfile
from bordin.web.i18n import remember_for_staff


def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SessionEpoch.SESSION_KEY] = SessionEpoch.current(user)
        request.session[LOGIN_AT_KEY] = int(time.time())
        # The staff member's language and clinic time zone for every page (web.i18n).
        profile = StaffProfile.objects.select_related("clinic").filter(user_id=user.pk).first()
        remember_for_staff(request, profile)


def _locked_out(
    sender: Any, request: HttpRequest | None, username: str | None = None, **kwargs: Any
) -> None:
    """One ``login_failed`` event saying the user name (and address) is now locked out."""
    record_login_failed(
        request, username or "", f"locked out after {settings.AXES_FAILURE_LIMIT} failed attempts"
    )


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="bordin.accounts.session_stamp")
    user_locked_out.connect(_locked_out, dispatch_uid="bordin.accounts.locked_out")
