"""Account pages: second-factor set-up and verification, recovery codes, log out everywhere,
unlocking a locked log-in (clinic admins), and the lockout page shown by django-axes.

Staff get here from :class:`~bordin.web.accounts.middleware.StaffSessionMiddleware`, which sends
every password-authenticated but unverified request to :func:`verify` (or :func:`setup`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bordin.web import i18n
from bordin.web.accounts import second_factor
from bordin.web.accounts.models import SessionEpoch
from bordin.web.audit import log
from bordin.web.clinic import scoping
from bordin.web.nexturl import safe_next


def _next(request: HttpRequest) -> str:
    """Where to go after the second factor: a safe ``next``, or the caseload."""
    target = safe_next(request, request.POST.get("next") or request.GET.get("next"))
    return target or reverse(settings.LOGIN_REDIRECT_URL)


def _wrong_code_message(outcome: second_factor.Outcome) -> str:
    if outcome.wait_until is not None:
        when = timezone.localtime(outcome.wait_until).strftime("%H:%M:%S")
        return f"Too many wrong codes in a row. Wait until {when} before trying again."
    return "That code is not valid. Check the time on your phone and try again."


def _credentials(user: Any) -> dict[str, str]:
    return {"username": user.get_username()}


def _forget_failures(request: HttpRequest, user: Any) -> None:
    """A complete log-in (password and second factor) clears this address's failures."""
    AxesProxyHandler.update_request(request)
    AxesProxyHandler.reset_attempts(
        ip_address=getattr(request, "axes_ip_address", None), username=user.get_username()
    )


def locked_out(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """The lockout page (``AXES_LOCKOUT_CALLABLE``): the same for every user name."""
    cool_off = get_cool_off(request) or timedelta(minutes=15)
    until = timezone.localtime(timezone.now() + cool_off)
    context = {"until": until, "minutes": int(cool_off.total_seconds() // 60)}
    return render(request, "accounts/locked_out.html", context, status=429)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    """Set up the authenticator app: QR code and key, confirm with a code, then recovery codes.

    Only for a user without an authenticator: anyone else goes to verification (or, already
    verified, to their account page), so a password alone can never replace a device.
    """
    user = request.user
    if second_factor.totp_device(user) is not None:
        if second_factor.passed(request):
            return redirect("account")
        return redirect(f"{reverse('2fa-verify')}?{urlencode({'next': _next(request)})}")
    device = second_factor.pending_device(user)
    error = ""
    if request.method == "POST":
        outcome = second_factor.check_code(user, request.POST.get("code", ""), device)
        if outcome.device is not None:
            with transaction.atomic():
                codes = second_factor.confirm(device)
                log.record(
                    request,
                    log.Action.UPDATE,
                    object_type="user",
                    object_id=user.pk,
                    detail="second factor set up",
                )
            second_factor.mark_verified(request, device)
            _forget_failures(request, user)
            return render(
                request, "accounts/recovery_codes.html", {"codes": codes, "next": _next(request)}
            )
        error = _wrong_code_message(outcome)
    context = {
        "qr_svg": second_factor.qr_svg(device),
        "secret": second_factor.secret_for_manual_entry(device),
        "error": error,
        "next": _next(request),
    }
    return render(request, "accounts/setup.html", context)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Ask for a code from the authenticator app, or a recovery code (which is then used up).

    Wrong codes count as failed log-ins (audit log and django-axes): after
    ``AXES_FAILURE_LIMIT`` of them the user is logged out and locked out like for passwords.
    """
    user = request.user
    target = _next(request)
    if second_factor.passed(request):
        return redirect(target)
    if second_factor.totp_device(user) is None:
        return redirect(f"{reverse('2fa-setup')}?{urlencode({'next': target})}")
    if not AxesProxyHandler.is_allowed(request, _credentials(user)):
        logout(request)
        return locked_out(request)
    error = ""
    if request.method == "POST":
        outcome = second_factor.check_code(user, request.POST.get("code", ""))
        if outcome.device is not None:
            second_factor.mark_verified(request, outcome.device)
            _forget_failures(request, user)
            how = "recovery code" if outcome.recovery_code else "authenticator app"
            log.record(
                request,
                log.Action.LOGIN,
                object_type="user",
                object_id=user.pk,
                detail=f"second factor passed ({how})",
            )
            if outcome.recovery_code:
                left = second_factor.remaining_recovery_codes(user)
                messages.warning(
                    request,
                    ngettext(
                        "You used a recovery code; %(left)s left. "
                        "Make new ones on your account page if you are running out.",
                        "You used a recovery code; %(left)s left. "
                        "Make new ones on your account page if you are running out.",
                        left,
                    )
                    % {"left": left},
                )
            return redirect(target)
        error = _wrong_code_message(outcome)
        user_login_failed.send(
            sender=__name__,
            credentials=_credentials(user),
            request=request,
            detail="wrong second-factor code",
        )
        if getattr(request, "axes_locked_out", False):
            logout(request)
            return locked_out(request)
    return render(request, "accounts/verify.html", {"error": error, "next": target})


def _locked_usernames(profile: Any) -> list[str]:
    """User names of this clinic's staff that are locked out right now (any address)."""
    if profile is None or not profile.is_clinic_admin:
        return []
    cool_off = get_cool_off() or timedelta(minutes=15)
    staff = get_user_model()._default_manager.filter(staff__clinic_id=profile.clinic_id)
    attempts = AccessAttempt.objects.filter(
        attempt_time__gte=timezone.now() - cool_off,
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT,
        username__in=staff.values("username"),
    )
    return sorted(set(attempts.values_list("username", flat=True)))


@never_cache
@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    user = request.user
    device = second_factor.totp_device(user)
    context = {
        "device": device,
        "recovery_left": second_factor.remaining_recovery_codes(user),
        "idle_minutes": settings.BORDIN_IDLE_TIMEOUT_MINUTES,
        "locked": _locked_usernames(scoping.staff_profile(user)),
        "languages": settings.LANGUAGES,
        "chosen_language": request.session.get(i18n.SESSION_LANGUAGE, ""),
    }
    return render(request, "accounts/account.html", context)


@never_cache
@login_required
@require_POST
def recovery_codes(request: HttpRequest) -> HttpResponse:
    """Replace the recovery codes (the old ones stop working) and show the new ones once."""
    user = request.user
    if second_factor.totp_device(user) is None:
        return redirect("2fa-setup")
    with transaction.atomic():
        codes = second_factor.new_recovery_codes(user)
        log.record(
            request,
            log.Action.UPDATE,
            object_type="user",
            object_id=user.pk,
            detail="new recovery codes",
        )
    return render(
        request, "accounts/recovery_codes.html", {"codes": codes, "next": reverse("account")}
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    """Change one's own password (the old one, then the new one twice; the validators apply)."""
    form = PasswordChangeForm(request.user, request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            with transaction.atomic():
                user = form.save()
                log.record(
                    request,
                    log.Action.UPDATE,
                    object_type="user",
                    object_id=user.pk,
                    detail="password changed",
                )
            update_session_auth_hash(request, user)  # this session stays logged in
            messages.success(request, _("Your password has been changed."))
            return redirect("account")
        return render(request, "accounts/password_change.html", {"form": form}, status=400)
    return render(request, "accounts/password_change.html", {"form": form})


@login_required
@require_POST
def logout_everywhere(request: HttpRequest) -> HttpResponse:
    """End every session of this user, on every device, this one included."""
    user = request.user
    with transaction.atomic():
        log.record(
            request,
            log.Action.UPDATE,
            object_type="user",
            object_id=user.pk,
            detail="logged out of every session",
        )
        SessionEpoch.advance(user)
    logout(request)
    messages.success(request, _("You have been logged out on every device."))
    return redirect("login")


@login_required
@require_POST
def language(request: HttpRequest) -> HttpResponse:
    """Choose the language of one's own pages (empty: the browser's); kept on the profile."""
    chosen = request.POST.get("language", "")
    if chosen and chosen not in dict(settings.LANGUAGES):
        messages.error(request, _("Choose one of the languages listed."))
        return redirect("account")
    profile = scoping.staff_profile(request.user)
    with transaction.atomic():
        if profile is not None:
            profile.language = chosen
            profile.save(update_fields=["language"])
        log.record(
            request,
            log.Action.UPDATE,
            object_type="user",
            object_id=request.user.pk,
            detail=f"language: {chosen or 'browser'}",
        )
    request.session[i18n.SESSION_LANGUAGE] = chosen
    with translation.override(i18n.supported(chosen or translation.get_language())):
        messages.success(request, _("Language saved."))
    return redirect("account")


@login_required
@require_POST
def unlock(request: HttpRequest, username: str) -> HttpResponse:
    """A clinic admin lifts the lockout of a colleague's user name (from every address)."""
    profile = scoping.staff_profile(request.user)
    if username not in _locked_usernames(profile):
        raise Http404("No such locked log-in.")
    account = get_user_model()._default_manager.get(username=username)
    with transaction.atomic():
        AxesProxyHandler.reset_attempts(username=username)
        log.record(
            request,
            log.Action.UPDATE,
            object_type="user",
            object_id=account.pk,
            detail=f"unlocked the log-in of {username}",
        )
    messages.success(request, _("%(user)s can log in again.") % {"user": username})
    return redirect("account")
