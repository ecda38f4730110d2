"""At log-in, stamp the session (epoch, time); record lockouts in the audit log."""

from __future__ import annotations

import time
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest

from bordin.web.accounts.middleware import LOGIN_AT_KEY
from bordin.web.accounts.models import SessionEpoch
from bordin.web.audit import log


def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SessionEpoch.SESSION_KEY] = SessionEpoch.current(user)
        request.session[LOGIN_AT_KEY] = int(time.time())


def _locked_out(
    sender: Any, request: HttpRequest | None, username: str | None = None, **kwargs: Any
) -> None:
    """One ``login_failed`` event saying the user name (and address) is now locked out."""
    model = get_user_model()
    account = (
        model._default_manager.filter(**{model.USERNAME_FIELD: username}).first()
        if username
        else None
    )
    row = log.event(
        request,
        log.Action.LOGIN_FAILED,
        user=account,
        object_type="user",
        object_id=account.pk if account else None,
        detail=f"locked out after {settings.AXES_FAILURE_LIMIT} failed attempts",
    )
    row.username = (username or "")[:150]
    row.save()


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="bordin.accounts.session_stamp")
    user_locked_out.connect(_locked_out, dispatch_uid="bordin.accounts.locked_out")
