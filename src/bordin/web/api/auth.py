"""Bearer-token authentication shared by ``/api/v1/`` and ``/fhir/``.

A valid token makes its staff member the request's user, so the same scoping layer
(:mod:`bordin.web.clinic.scoping`) and the same audit events apply as on the web. A missing,
unknown, expired or revoked token, or one whose user has no staff profile, is refused (401).
"""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone

from bordin.web.api.models import ApiToken, hash_token
from bordin.web.clinic import scoping

#: ``last_used_at`` is written at most this often per token (saves a write per request).
LAST_USE_RESOLUTION = timedelta(minutes=1)


def bearer(request: HttpRequest) -> str:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def authenticate(request: HttpRequest, token: str | None = None) -> ApiToken | None:
    """The usable token of the request (``Authorization: Bearer ...``), its user set on the
    request; ``None`` when there is none."""
    token = token if token is not None else bearer(request)
    if not token or len(token) > 200:
        return None
    row = (
        ApiToken.objects.select_related("user__staff").filter(token_hash=hash_token(token)).first()
    )
    now = timezone.now()
    if row is None or not row.is_usable(now) or not row.user.is_active:
        return None
    if scoping.staff_profile(row.user) is None:
        return None
    if row.last_used_at is None or now - row.last_used_at > LAST_USE_RESOLUTION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    request.user = row.user
    request.api_token = row  # type: ignore[attr-defined]
    return row
