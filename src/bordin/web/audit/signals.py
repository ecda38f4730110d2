"""Log-ins, failed log-ins and log-outs go to the audit log (Django's auth signals)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.http import HttpRequest

from bordin.web.audit import log


def _logged_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    log.record(request, log.Action.LOGIN, user=user, object_type="user", object_id=user.pk)


def _logged_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        log.record(request, log.Action.LOGOUT, user=user, object_type="user", object_id=user.pk)


def _login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """The attempted username is kept; so is the account's clinic, when it exists.

    Senders may pass ``detail`` (the second-factor page says "wrong second-factor code").
    """
    model = get_user_model()
    username = str(credentials.get(model.USERNAME_FIELD, credentials.get("username", "")))
    record_login_failed(request, username, str(kwargs.get("detail", "")))


def record_login_failed(request: HttpRequest | None, username: str, detail: str) -> None:
    """One ``login_failed`` event for the attempted user name (its account, when it exists)."""
    model = get_user_model()
    account = (
        model._default_manager.select_related("staff")
        .filter(**{model.USERNAME_FIELD: username})
        .first()
        if username
        else None
    )
    row = log.event(
        request,
        log.Action.LOGIN_FAILED,
        user=account,
        object_type="user",
        object_id=account.pk if account else None,
        detail=detail,
    )
    row.username = username[:150]
    row.save()


def connect() -> None:
    user_logged_in.connect(_logged_in, dispatch_uid="bordin.audit.login")
    user_logged_out.connect(_logged_out, dispatch_uid="bordin.audit.logout")
    user_login_failed.connect(_login_failed, dispatch_uid="bordin.audit.login_failed")
