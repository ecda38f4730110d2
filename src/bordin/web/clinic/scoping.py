"""Who may see what. Every view, export and endpoint reaches clinical records through here.

Roles (``StaffProfile.role``), always within the user's own clinic:

=============  ==============================  =====================  ====================
role           reads (caseload, client pages,  writes (ratings,       de-identified export,
               alerts)                         sessions, links,       audit log
                                               alert transitions)
=============  ==============================  =====================  ====================
therapist      own clients                     own clients            no
supervisor     own clients + supervisees'      own clients only       no
clinic admin   every client of the clinic      every client           yes (both)
researcher     none                            none                   export only
=============  ==============================  =====================  ====================

* Nobody sees another clinic; a user without a staff profile sees nothing.
* A record outside the user's scope is answered with 404, never 403, so that its existence is
  not revealed (a supervisor asking to *change* a supervisee's record gets 404 too). A page
  the user's role may not open at all (researcher on the alert list, anyone but an admin on
  the audit log) is a 403 (:func:`require`).
* Reads are audited here: :func:`get_client_for` records a ``read`` event, and a lookup that
  fails for a logged-in user records a ``denied`` event. Lists record one event per client
  shown (:func:`record_list`). Writes are recorded by the views, after the write.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest

from bordin.web.alerts.models import Alert
from bordin.web.audit import log
from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Client, Response, StaffProfile

Role = StaffProfile.Role

#: Roles that see client records (the caseload, client pages, alerts).
CLINICAL_ROLES = frozenset({Role.THERAPIST, Role.SUPERVISOR, Role.CLINIC_ADMIN})
#: Roles that may download the de-identified scores export.
EXPORT_ROLES = frozenset({Role.CLINIC_ADMIN, Role.RESEARCHER})
#: Roles that may read and export their clinic's audit log.
AUDIT_ROLES = frozenset({Role.CLINIC_ADMIN})


def staff_profile(user: Any) -> StaffProfile | None:
    """The user's staff profile, or ``None`` (anonymous, or not staff of any clinic)."""
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        profile: StaffProfile = user.staff
    except StaffProfile.DoesNotExist:
        return None
    return profile


def has_role(user: Any, roles: Iterable[str]) -> bool:
    profile = staff_profile(user)
    return profile is not None and profile.role in roles


def require(user: Any, roles: Iterable[str]) -> StaffProfile:
    """The user's profile if their role is one of ``roles``; otherwise 403."""
    profile = staff_profile(user)
    if profile is None or profile.role not in roles:
        raise PermissionDenied("Your role does not give access to this page.")
    return profile


# --- client records ---------------------------------------------------------------------------


def clients_for(user: Any, *, write: bool = False) -> QuerySet[Client]:
    """Clients this user may see (``write=True``: may change), active or not."""
    profile = staff_profile(user)
    if profile is None or profile.role not in CLINICAL_ROLES:
        return Client.objects.none()
    qs = Client.objects.filter(clinic_id=profile.clinic_id)
    if profile.is_clinic_admin:
        return qs
    if profile.is_supervisor and not write:
        return qs.filter(
            Q(therapist_id=user.pk) | Q(therapist_id__in=profile.supervisees.values("pk"))
        )
    return qs.filter(therapist_id=user.pk)


def can_write(user: Any, client: Client) -> bool:
    """Whether ``user`` may change ``client``'s records (no query; ``client`` is in read scope)."""
    profile = staff_profile(user)
    if profile is None or profile.clinic_id != client.clinic_id:
        return False
    if profile.is_clinic_admin:
        return True
    return profile.role in CLINICAL_ROLES and client.therapist_id == user.pk


def _denied(request: HttpRequest, object_type: str, pk: object) -> None:
    if getattr(request.user, "is_authenticated", False):
        log.record(request, log.Action.DENIED, object_type=object_type, object_id=pk)


def get_client_for(request: HttpRequest, pk: int, *, write: bool = False) -> Client:
    """The client ``pk`` if the request's user may see it (or change it); otherwise 404.

    A read is recorded in the audit log here. With ``write=True`` nothing is recorded on
    success: the view records the write it makes. A refusal is recorded either way.
    """
    try:
        client = clients_for(request.user, write=write).select_related("clinic", "therapist")
        found = client.get(pk=pk)
    except Client.DoesNotExist:
        _denied(request, "client", pk)
        raise Http404("No such client") from None
    if not write:
        log.record(request, log.Action.READ, object_type="client", object_id=pk, client_id=found.pk)
    return found


def record_list(
    request: HttpRequest, object_type: str, rows: Iterable[tuple[object, int]], detail: str
) -> int:
    """Record one ``read`` per listed ``(object id, client id)``, in one insert."""
    return log.record_many(request, log.Action.READ, object_type, rows, detail=detail)


# --- alerts -----------------------------------------------------------------------------------


def alerts_for(user: Any, *, write: bool = False) -> QuerySet[Alert]:
    """Alerts about clients this user may see (``write=True``: may act on)."""
    return Alert.objects.filter(client__in=clients_for(user, write=write))


def get_alert_for(request: HttpRequest, pk: int, *, write: bool = False) -> Alert:
    """The alert ``pk`` if the user may see (act on) its client; otherwise 404."""
    try:
        return alerts_for(request.user, write=write).select_related("client").get(pk=pk)
    except Alert.DoesNotExist:
        _denied(request, "alert", pk)
        raise Http404("No such alert") from None


# --- de-identified exports --------------------------------------------------------------------


def pseudonym(clinic_id: int, client_pk: int) -> str:
    """A stable per-clinic pseudonym for a client: HMAC-SHA256 of the pk, 16 hex digits.

    The key is derived from ``SECRET_KEY`` and the clinic id, so pseudonyms differ between
    clinics and cannot be reversed or recomputed without the secret key. Rotating the secret
    key changes every pseudonym.
    """
    key = hmac.new(
        settings.SECRET_KEY.encode(),
        f"bordin.exports.pseudonym.v1:clinic:{clinic_id}".encode(),
        hashlib.sha256,
    ).digest()
    return hmac.new(key, str(client_pk).encode(), hashlib.sha256).hexdigest()[:16]


def export_scores_for(user: Any) -> QuerySet[Response]:
    """Every stored score of the user's clinic, for a de-identified export (403 otherwise).

    Only ``Response`` rows are returned; the export must not add names, contact details or
    free text (see :mod:`bordin.web.clinic.exports`).
    """
    profile = require(user, EXPORT_ROLES)
    return Response.objects.filter(session__episode__client__clinic_id=profile.clinic_id)


# --- the audit log ----------------------------------------------------------------------------


def audit_events_for(user: Any) -> QuerySet[AuditEvent]:
    """The audit events of the user's clinic, for a clinic admin (403 for everyone else).

    A superuser is the site operator: they see the events that belong to no clinic (unknown
    user names, anonymous requests, failed link lookups, users without a staff profile), and
    their own clinic's too when they are its admin.
    """
    if getattr(user, "is_authenticated", False) and getattr(user, "is_superuser", False):
        profile = staff_profile(user)
        scope = Q(clinic_id__isnull=True)
        if profile is not None and profile.role in AUDIT_ROLES:
            scope |= Q(clinic_id=profile.clinic_id)
        return AuditEvent.objects.filter(scope)
    profile = require(user, AUDIT_ROLES)
    return AuditEvent.objects.filter(clinic_id=profile.clinic_id)


# --- clinic operations (issue 9) --------------------------------------------------------------

#: Roles that manage staff, import clients, export and erase a client's records.
ADMIN_ROLES = frozenset({Role.CLINIC_ADMIN})


def get_staff_for(request: HttpRequest, user_pk: int) -> StaffProfile:
    """A staff profile of the admin's own clinic (by user id); 404 for anyone else."""
    profile = staff_profile(request.user)
    found = None
    if profile is not None and profile.is_clinic_admin:
        found = (
            StaffProfile.objects.select_related("user")
            .filter(clinic_id=profile.clinic_id, user_id=user_pk)
            .first()
        )
    if found is None:
        _denied(request, "user", user_pk)
        raise Http404("No such staff member")
    return found


def get_client_for_admin(request: HttpRequest, pk: int) -> Client:
    """The client ``pk`` for a clinic admin of its clinic (nothing recorded); 404 otherwise."""
    client = get_client_for(request, pk, write=True)
    if not has_role(request.user, ADMIN_ROLES):
        _denied(request, "client", pk)
        raise Http404("No such client")
    return client


# --- FHIR and API reads (issue 11) -----------------------------------------------------------


def interop_clients_for(user: Any) -> tuple[QuerySet[Client], bool]:
    """Clients whose records ``user`` may read through ``/fhir/`` and exports, and whether they
    must be pseudonymous: the clinical roles see their clients as on the web (identified); a
    researcher sees every client of the clinic, pseudonymous only (as the scores export)."""
    profile = staff_profile(user)
    if profile is not None and profile.is_researcher:
        return Client.objects.filter(clinic_id=profile.clinic_id), True
    return clients_for(user), False
