"""Staff operations behind the ``/staff/`` pages: invite, enrol, roles, deactivate, reset 2FA.

Every function records its write in the audit log inside the write's transaction.
"""

from __future__ import annotations

import smtplib
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from bordin.web.accounts.models import SessionEpoch
from bordin.web.audit import log
from bordin.web.clinic.models import Client, StaffProfile
from bordin.web.operations.models import StaffInvite

Role = StaffProfile.Role
#: How long an enrolment link stays valid.
INVITE_HOURS = 72


class LastAdminError(ValueError):
    """The change would leave the clinic without an active clinic admin."""


def active_admins(clinic_id: int) -> int:
    return int(
        StaffProfile.objects.filter(
            clinic_id=clinic_id, role=Role.CLINIC_ADMIN, user__is_active=True
        ).count()
    )


def _keeps_an_admin(profile: StaffProfile, *, new_role: str | None, active: bool) -> None:
    """Refuse to demote or deactivate the clinic's last active admin."""
    was_admin = profile.is_clinic_admin and profile.user.is_active
    stays_admin = active and (new_role or profile.role) == Role.CLINIC_ADMIN
    if was_admin and not stays_admin and active_admins(profile.clinic_id) <= 1:
        raise LastAdminError(
            "This is the clinic's last active clinic admin: make someone else a clinic admin first."
        )


def _record_user(request: HttpRequest, user: Any, detail: str) -> None:
    log.record(request, log.Action.UPDATE, object_type="user", object_id=user.pk, detail=detail)


def username_taken(email: str) -> bool:
    return bool(get_user_model()._default_manager.filter(username__iexact=email.strip()).exists())


def invite(request: HttpRequest, clinic_id: int, data: dict[str, Any]) -> tuple[StaffInvite, str]:
    """Store an invitation and return it with its one-time token."""
    with transaction.atomic():
        row, token = StaffInvite.create_with_token(
            hours=INVITE_HOURS,
            clinic_id=clinic_id,
            first_name=data["first_name"],
            last_name=data.get("last_name", ""),
            email=data["email"].strip().lower(),
            role=data["role"],
            supervisee_ids=sorted(u.pk for u in data.get("supervisees", [])),
            created_by=request.user,
        )
        log.record(
            request,
            log.Action.CREATE,
            object_type="staff_invite",
            object_id=row.pk,
            detail=f"invited {row.email} as {row.get_role_display()}",
        )
    return row, token


def send_invite_email(row: StaffInvite, url: str) -> str:
    """Email the enrolment link through the configured ``EMAIL_BACKEND``; '' or the error."""
    # In the inviting admin's language (the invitee's is not known yet).
    body = gettext(
        "Hello %(name)s,\n\nYou have been invited to join %(clinic)s on Bordin as %(role)s.\n\n"
        "Open this link within %(hours)s hours to choose your password and set up your second "
        "factor. It works once.\n\n%(url)s\n\nIf you did not expect this email, ignore it.\n"
    ) % {
        "name": row.first_name,
        "clinic": row.clinic.name,
        "role": str(row.get_role_display()).lower(),
        "hours": INVITE_HOURS,
        "url": url,
    }
    try:
        send_mail(gettext("Your Bordin account"), body, None, [row.email])
    except (OSError, smtplib.SMTPException) as exc:
        return str(exc) or type(exc).__name__
    return ""


def new_user_for(row: StaffInvite) -> Any:
    """The (unsaved) account an invitation makes: the email is the user name."""
    return get_user_model()(
        username=row.email, email=row.email, first_name=row.first_name, last_name=row.last_name
    )


def enrol(request: HttpRequest, row: StaffInvite, user: Any) -> bool:
    """Use the invitation: save ``user`` (password already set) and their staff profile.

    ``False`` if the link was used, revoked or expired meanwhile (nothing stored).
    """
    with transaction.atomic():
        fresh = StaffInvite.objects.select_for_update().filter(pk=row.pk).first()
        if fresh is None or not fresh.is_usable() or username_taken(user.username):
            return False
        user.save()
        profile = StaffProfile.objects.create(user=user, clinic_id=fresh.clinic_id, role=fresh.role)
        if fresh.supervisee_ids:
            profile.supervisees.set(
                get_user_model()._default_manager.filter(
                    pk__in=fresh.supervisee_ids, staff__clinic_id=fresh.clinic_id
                )
            )
        fresh.used_at = timezone.now()
        fresh.user = user
        fresh.save(update_fields=["used_at", "user"])
        log.record(
            request,
            log.Action.CREATE,
            user=user,
            object_type="user",
            object_id=user.pk,
            detail=f"enrolled with invitation {fresh.pk}",
        )
    return True


def revoke_invite(request: HttpRequest, row: StaffInvite) -> None:
    with transaction.atomic():
        StaffInvite.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
        log.record(
            request,
            log.Action.UPDATE,
            object_type="staff_invite",
            object_id=row.pk,
            detail="revoked",
        )


def change(request: HttpRequest, profile: StaffProfile, role: str, supervisees: list[Any]) -> None:
    """Set the role and the supervisees (only a supervisor keeps any)."""
    _keeps_an_admin(profile, new_role=role, active=profile.user.is_active)
    with transaction.atomic():
        old_role = profile.role
        profile.role = role
        profile.save(update_fields=["role"])
        profile.supervisees.set(supervisees if role == Role.SUPERVISOR else [])
        names = ", ".join(sorted(u.get_username() for u in supervisees)) or "none"
        _record_user(
            request,
            profile.user,
            (f"{profile.user.get_username()}: role {old_role} -> {role}; supervisees: {names}"),
        )


def deactivate(request: HttpRequest, profile: StaffProfile) -> None:
    """No more log-ins; every session of theirs ends now; records and audit trail stay."""
    _keeps_an_admin(profile, new_role=None, active=False)
    user = profile.user
    with transaction.atomic():
        user.is_active = False
        user.save(update_fields=["is_active"])
        SessionEpoch.advance(user)
        _record_user(request, user, f"deactivated {user.get_username()}; every session ended")


def reactivate(request: HttpRequest, profile: StaffProfile) -> None:
    user = profile.user
    with transaction.atomic():
        user.is_active = True
        user.save(update_fields=["is_active"])
        _record_user(request, user, f"reactivated {user.get_username()}")


def reset_second_factor(request: HttpRequest, profile: StaffProfile) -> None:
    """Remove the authenticator and recovery codes; end the user's sessions.

    At their next log-in the middleware sends them to set up a new authenticator.
    """
    user = profile.user
    with transaction.atomic():
        TOTPDevice.objects.filter(user_id=user.pk).delete()
        StaticDevice.objects.filter(user_id=user.pk).delete()
        SessionEpoch.advance(user)
        _record_user(
            request,
            user,
            (f"second factor of {user.get_username()} reset by {request.user.get_username()}"),
        )


def clients_of(user: Any) -> list[Client]:
    """The clients (not archived) whose therapist is ``user``: to reassign on deactivation."""
    return list(Client.objects.filter(therapist=user, archived_at__isnull=True))


def has_second_factor(user_ids: list[int]) -> set[int]:
    return set(
        TOTPDevice.objects.filter(user_id__in=user_ids, confirmed=True).values_list(
            "user_id", flat=True
        )
    )


def invite_url_debug_only() -> bool:
    """Whether the enrolment link is also shown on screen: the demo (``DEBUG``) only."""
    return bool(settings.DEBUG)
