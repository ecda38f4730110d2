"""Recording audit events: the only code that creates :class:`AuditEvent` rows.

Reads of client records are recorded by :mod:`bordin.web.clinic.scoping` as it hands them out;
views record their writes with :func:`record` right after the write, inside the same
transaction, so a write is never stored without its event. If recording fails, the request
fails: there is no unaudited path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.http import HttpRequest

from bordin.web.audit.models import AuditEvent

Action = AuditEvent.Action

#: Longest stored user agent; the rest is cut off.
USER_AGENT_LIMIT = 300


def client_ip(request: HttpRequest | None) -> str | None:
    """``REMOTE_ADDR``, or the first ``X-Forwarded-For`` hop when the proxy is trusted.

    Only trust the header (``BORDIN_TRUST_X_FORWARDED_FOR``) behind a reverse proxy that
    *replaces* it with the address it sees; otherwise a client can write any address there.
    """
    if request is None:
        return None
    raw = ""
    if getattr(settings, "BORDIN_TRUST_X_FORWARDED_FOR", False):
        raw = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[0].strip()
    if not raw:
        raw = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def _path(request: HttpRequest) -> str:
    """The request path, with a check-in token replaced so that it is never stored."""
    match = getattr(request, "resolver_match", None)
    if match is not None and "token" in match.kwargs:
        return request.path.replace(str(match.kwargs["token"]), "<token>")[:500]
    return request.path[:500]


def _where(request: HttpRequest | None) -> dict[str, Any]:
    if request is None:
        return {"path": "", "ip_address": None, "user_agent": ""}
    return {
        "path": _path(request),
        "ip_address": client_ip(request),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_LIMIT],
    }


def _who(user: Any) -> dict[str, Any]:
    if not getattr(user, "is_authenticated", False):
        return {"user_id": None, "username": "", "role": "", "clinic_id": None}
    try:
        profile = user.staff
    except (AttributeError, ObjectDoesNotExist):  # a user without a staff profile
        profile = None
    return {
        "user_id": user.pk,
        "username": user.get_username()[:150],
        "role": profile.role if profile is not None else "",
        "clinic_id": profile.clinic_id if profile is not None else None,
    }


def event(
    request: HttpRequest | None,
    action: str,
    *,
    user: Any = None,
    object_type: str = "",
    object_id: object = None,
    client_id: int | None = None,
    clinic_id: int | None = None,
    detail: str = "",
) -> AuditEvent:
    """An unsaved event for the request's user (or ``user``); see :func:`record`."""
    actor = user if user is not None else getattr(request, "user", None)
    fields = {**_who(actor), **_where(request)}
    if clinic_id is not None:
        fields["clinic_id"] = clinic_id
    return AuditEvent(
        action=action,
        object_type=object_type,
        object_id="" if object_id is None else str(object_id)[:64],
        client_id=client_id,
        detail=detail[:200],
        **fields,
    )


def record(
    request: HttpRequest | None,
    action: str,
    *,
    user: Any = None,
    object_type: str = "",
    object_id: object = None,
    client_id: int | None = None,
    clinic_id: int | None = None,
    detail: str = "",
) -> AuditEvent:
    """Store one event by the request's user; ``clinic_id`` defaults to the user's clinic."""
    row = event(
        request,
        action,
        user=user,
        object_type=object_type,
        object_id=object_id,
        client_id=client_id,
        clinic_id=clinic_id,
        detail=detail,
    )
    row.save()
    return row


def record_many(
    request: HttpRequest,
    action: str,
    object_type: str,
    objects: Iterable[tuple[object, int]],
    *,
    detail: str = "",
) -> int:
    """One event per ``(object id, client id)`` pair, in a single bulk insert."""
    template = event(request, action, object_type=object_type, detail=detail)
    fields = {
        f.attname: getattr(template, f.attname)
        for f in AuditEvent._meta.concrete_fields
        if not f.primary_key
    }
    rows = [
        AuditEvent(**{**fields, "object_id": str(object_id), "client_id": client_id})
        for object_id, client_id in objects
    ]
    if rows:
        AuditEvent.objects.bulk_create(rows)
    return len(rows)


def record_checkin(
    request: HttpRequest | None, link: Any, action: str, *, object_type: str, detail: str = ""
) -> AuditEvent:
    """An event whose actor is a client's check-in link (the client is not a user)."""
    row = AuditEvent(
        action=action,
        role=AuditEvent.CHECKIN_LINK_ROLE,
        checkin_link_id=link.pk,
        clinic_id=link.client.clinic_id,
        client_id=link.client_id,
        object_type=object_type,
        object_id=str(link.session_id),
        detail=detail[:200],
        **_where(request),
    )
    row.save()
    return row
