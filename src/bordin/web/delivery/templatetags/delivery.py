"""Template helpers: the in-room QR code and the caseload's delivery panel."""

from __future__ import annotations

from typing import Any

import segno
from django import template
from django.utils.safestring import SafeString, mark_safe

from bordin.web.clinic import scoping
from bordin.web.delivery import stats

register = template.Library()


@register.filter
def qr_svg(url: str) -> SafeString:
    """The URL as an inline SVG QR code (segno), for a client to scan before leaving."""
    svg = segno.make(url, error="m").svg_inline(scale=4, title="QR code of the link")
    return mark_safe(svg)  # noqa: S308 - segno's own SVG markup; the URL is escaped by segno  # nosec B308 B703


@register.inclusion_tag("delivery/_caseload_panel.html", takes_context=True)
def delivery_panel(context: dict[str, Any]) -> dict[str, Any]:
    """Completion rate (per therapist for admins) and flagged contacts, for the caseload."""
    user = context["request"].user
    profile = scoping.staff_profile(user)
    clients = scoping.clients_for(user)
    return {
        "rate": stats.completion(clients),
        "rates": stats.therapist_rates(profile.clinic)
        if profile is not None and profile.is_clinic_admin
        else None,
        "failures": stats.contact_failures(clients),
    }
