"""Who may see what. Every staff view reaches clinical records through these helpers.

* a therapist sees their own clients;
* a clinic admin sees every client of their clinic;
* nobody sees another clinic, and a user without a staff profile sees nothing.

Records outside a user's scope are answered with 404, never 403, so that their existence is
not revealed. This is the one place to extend for a second factor or an audit log.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from bordin.web.alerts.models import Alert
from bordin.web.clinic.models import Client, StaffProfile


def staff_profile(user: Any) -> StaffProfile | None:
    """The user's staff profile, or ``None`` (anonymous, or not staff of any clinic)."""
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        profile: StaffProfile = user.staff
    except StaffProfile.DoesNotExist:
        return None
    return profile


def clients_for(user: Any) -> QuerySet[Client]:
    """Clients this user may see (active or not); empty for anyone without a staff role."""
    profile = staff_profile(user)
    if profile is None:
        return Client.objects.none()
    qs = Client.objects.filter(clinic_id=profile.clinic_id)
    if not profile.is_clinic_admin:
        qs = qs.filter(therapist_id=user.pk)
    return qs


def get_client_for(user: Any, pk: int) -> Client:
    """The client ``pk`` if this user may see it; otherwise :class:`~django.http.Http404`."""
    try:
        return clients_for(user).select_related("clinic", "therapist").get(pk=pk)
    except Client.DoesNotExist:
        raise Http404("No such client") from None


def alerts_for(user: Any) -> QuerySet[Alert]:
    """Alerts about clients this user may see."""
    return Alert.objects.filter(client__in=clients_for(user))


def get_alert_for(user: Any, pk: int) -> Alert:
    """The alert ``pk`` if this user may see its client; otherwise 404."""
    try:
        return alerts_for(user).select_related("client").get(pk=pk)
    except Alert.DoesNotExist:
        raise Http404("No such alert") from None
