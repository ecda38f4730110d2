"""Clinic operations pages: staff (clinic admins), clients and episodes, imports, data rights.

Plain function views. Staff and client records are fetched through
:mod:`bordin.web.clinic.scoping` (404 outside the user's scope); every write is recorded in the
audit log by the service modules inside the write's transaction.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bordin.web.accounts import second_factor
from bordin.web.audit import log
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, StaffProfile
from bordin.web.operations import clients, imports, rights, staff
from bordin.web.operations.forms import (
    ClientForm,
    CloseEpisodeForm,
    EraseForm,
    ImportForm,
    InviteForm,
    ReassignForm,
    SecondFactorForm,
    SettingsForm,
    StaffForm,
)
from bordin.web.operations.models import ClinicSettings, StaffInvite

ADMIN = scoping.ADMIN_ROLES


def _fresh_second_factor(request: HttpRequest, form: SecondFactorForm) -> bool:
    """The second factor passed within 10 minutes, or a correct code in ``form`` now."""
    if second_factor.passed_recently(request):
        return True
    outcome = second_factor.check_code(request.user, form.cleaned_data.get("code") or "")
    if outcome.device is not None:
        second_factor.mark_verified(request, outcome.device)
        return True
    form.add_error(
        "code",
        "Enter a current code from your authenticator app: this needs your second factor "
        f"within the last {second_factor.RECENT_MINUTES} minutes.",
    )
    return False


# --- staff ------------------------------------------------------------------------------------


@never_cache
@login_required
@require_GET
def staff_list(request: HttpRequest) -> HttpResponse:
    profile = scoping.require(request.user, ADMIN)
    rows = list(
        StaffProfile.objects.filter(clinic_id=profile.clinic_id)
        .select_related("user")
        .prefetch_related("supervisees", "user__supervisors__user")
        .order_by("-user__is_active", "user__username")
    )
    with_2fa = staff.has_second_factor([r.user_id for r in rows])
    invites = StaffInvite.objects.filter(
        clinic_id=profile.clinic_id,
        used_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    )
    log.record(request, log.Action.READ, object_type="staff_list", detail=f"{len(rows)} staff")
    return render(
        request,
        "operations/staff_list.html",
        {"rows": rows, "with_2fa": with_2fa, "invites": invites},
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def staff_invite(request: HttpRequest) -> HttpResponse:
    profile = scoping.require(request.user, ADMIN)
    form = InviteForm(request.POST or None, clinic_id=profile.clinic_id)
    if request.method == "POST" and form.is_valid():
        row, token = staff.invite(request, profile.clinic_id, form.cleaned_data)
        url = request.build_absolute_uri(reverse("enrol", args=[token]))
        error = staff.send_invite_email(row, url)
        if error and staff.invite_url_debug_only():
            # The demo (DEBUG, loopback): the link is on screen anyway; say why no email came.
            messages.warning(
                request,
                gettext("The invitation email could not be sent (%(error)s).") % {"error": error},
            )
        elif error:
            staff.revoke_invite(request, row)
            messages.error(
                request,
                gettext(
                    "The invitation email could not be sent (%(error)s); the link was revoked. "
                    "Check the email settings (docs/deploy.md) and invite again."
                )
                % {"error": error},
            )
            return redirect("staff")
        context = {"invite": row, "link": url if staff.invite_url_debug_only() else ""}
        return render(request, "operations/staff_invited.html", context)
    return render(
        request,
        "operations/staff_invite.html",
        {"form": form, "hours": staff.INVITE_HOURS},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def invite_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    profile = scoping.staff_profile(request.user)
    row = None
    if profile is not None and profile.is_clinic_admin:
        row = StaffInvite.objects.filter(pk=pk, clinic_id=profile.clinic_id).first()
    if row is None or not row.is_usable():
        raise Http404("No such open invitation")
    staff.revoke_invite(request, row)
    messages.success(
        request, gettext("The invitation for %(email)s is revoked.") % {"email": row.email}
    )
    return redirect("staff")


def _staff_page(
    request: HttpRequest,
    profile: StaffProfile,
    *,
    form: StaffForm | None = None,
    reset_form: SecondFactorForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = profile.user
    own = staff.clients_of(user)
    scoping.record_list(request, "client", [(c.pk, c.pk) for c in own], "staff member's clients")
    initial = {"role": profile.role, "supervisees": list(profile.supervisees.all())}
    context = {
        "member": profile,
        "form": form
        or StaffForm(initial=initial, clinic_id=profile.clinic_id, exclude=profile.user_id),
        "reset_form": reset_form or SecondFactorForm(),
        "needs_code": not second_factor.passed_recently(request),
        "has_2fa": bool(staff.has_second_factor([user.pk])),
        "clients": own,
        "is_self": user.pk == request.user.pk,
    }
    return render(request, "operations/staff_detail.html", context, status=status)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def staff_detail(request: HttpRequest, pk: int) -> HttpResponse:
    profile = scoping.get_staff_for(request, pk)
    if request.method == "GET":
        log.record(request, log.Action.READ, object_type="user", object_id=pk)
        return _staff_page(request, profile)
    form = StaffForm(request.POST, clinic_id=profile.clinic_id, exclude=profile.user_id)
    if form.is_valid():
        try:
            staff.change(
                request, profile, form.cleaned_data["role"], list(form.cleaned_data["supervisees"])
            )
        except staff.LastAdminError as exc:
            form.add_error("role", str(exc))
        else:
            messages.success(
                request, gettext("%(user)s: changes saved.") % {"user": profile.user.get_username()}
            )
            return redirect("staff-detail", pk=pk)
    return _staff_page(request, profile, form=form, status=400)


@login_required
@require_POST
def staff_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    profile = scoping.get_staff_for(request, pk)
    if not profile.user.is_active:
        staff.reactivate(request, profile)
        messages.success(
            request, gettext("%(user)s can log in again.") % {"user": profile.user.get_username()}
        )
        return redirect("staff-detail", pk=pk)
    try:
        staff.deactivate(request, profile)
    except staff.LastAdminError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            gettext(
                "%(user)s is deactivated and logged out everywhere. Reassign their clients below."
            )
            % {"user": profile.user.get_username()},
        )
    return redirect("staff-detail", pk=pk)


@login_required
@require_POST
def staff_reset_2fa(request: HttpRequest, pk: int) -> HttpResponse:
    profile = scoping.get_staff_for(request, pk)
    form = SecondFactorForm(request.POST)
    if not form.is_valid() or not _fresh_second_factor(request, form):
        return _staff_page(request, profile, reset_form=form, status=400)
    staff.reset_second_factor(request, profile)
    messages.success(
        request,
        gettext(
            "The second factor of %(user)s is reset: they set up a new authenticator at their "
            "next log-in."
        )
        % {"user": profile.user.get_username()},
    )
    if profile.user_id == request.user.pk:
        return redirect("login")
    return redirect("staff-detail", pk=pk)


# --- enrolment (the invitee; no account yet) --------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest, token: str) -> HttpResponse:
    """Choose a password with a valid invitation; then the second factor must be set up."""
    row = StaffInvite.find(token)
    if row is None or not row.is_usable():
        return render(request, "operations/enrol_invalid.html", status=404)
    user = staff.new_user_for(row)
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.save(commit=False)
        if staff.enrol(request, row, user):
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("2fa-setup")
        return render(request, "operations/enrol_invalid.html", status=404)
    context = {"invite": row, "form": form}
    return render(request, "operations/enrol.html", context, status=400 if form.errors else 200)


# --- clients and episodes ---------------------------------------------------------------------


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def client_new(request: HttpRequest) -> HttpResponse:
    """An admin adds a client for any therapist of the clinic; a therapist for themself."""
    profile = scoping.require(request.user, scoping.CLINICAL_ROLES)
    mine = None if profile.is_clinic_admin else request.user
    form = ClientForm(request.POST or None, clinic_id=profile.clinic_id, therapist=mine)
    if request.method == "POST" and form.is_valid():
        client = clients.create(request, profile.clinic_id, form.cleaned_data)
        messages.success(request, gettext("Client added, with an open episode starting today."))
        return redirect("client", pk=client.pk)
    return render(
        request, "operations/client_new.html", {"form": form}, status=400 if form.errors else 200
    )


def _manage_page(
    request: HttpRequest, client: Client, status: int = 200, **forms: Any
) -> HttpResponse:
    episode = clients.open_episode(client)
    is_admin = scoping.has_role(request.user, ADMIN)
    initial = {f: getattr(client, f) for f in ("display_name", *clients.CONTACT_FIELDS)}
    initial.update(consent_email=client.consent_email, consent_sms=client.consent_sms)
    context = {
        "client": client,
        "episodes": list(client.episodes.order_by("-start", "-pk")),
        "episode": episode,
        "is_admin": is_admin,
        "contact_form": forms.get("contact_form")
        or ClientForm(
            initial=initial, clinic_id=client.clinic_id, client_pk=client.pk, with_therapist=False
        ),
        "reassign_form": forms.get("reassign_form")
        or ReassignForm(initial={"therapist": client.therapist_id}, clinic_id=client.clinic_id),
        "close_form": forms.get("close_form") or CloseEpisodeForm(episode=episode),
    }
    return render(request, "operations/client_manage.html", context, status=status)


@never_cache
@login_required
@require_GET
def client_manage(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for(request, pk, write=True)
    log.record(request, log.Action.READ, object_type="client", object_id=pk, client_id=pk)
    return _manage_page(request, client)


@login_required
@require_POST
def client_contact(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for(request, pk, write=True)
    form = ClientForm(
        request.POST, clinic_id=client.clinic_id, client_pk=client.pk, with_therapist=False
    )
    if not form.is_valid():
        return _manage_page(request, client, status=400, contact_form=form)
    clients.update_contact(request, client, form.cleaned_data)
    messages.success(request, gettext("Contact details and consent saved."))
    return redirect("client-manage", pk=pk)


@login_required
@require_POST
def client_reassign(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for_admin(request, pk)
    form = ReassignForm(request.POST, clinic_id=client.clinic_id)
    if not form.is_valid():
        return _manage_page(request, client, status=400, reassign_form=form)
    clients.reassign(request, client, form.cleaned_data["therapist"])
    messages.success(
        request, gettext("Therapist changed; the previous therapist no longer has access.")
    )
    return redirect("client-manage", pk=pk)


@login_required
@require_POST
def episode_close(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for(request, pk, write=True)
    episode = clients.open_episode(client)
    if episode is None:
        messages.error(request, gettext("This client has no open episode to close."))
        return redirect("client-manage", pk=pk)
    form = CloseEpisodeForm(request.POST, episode=episode)
    if not form.is_valid():
        return _manage_page(request, client, status=400, close_form=form)
    clients.close_episode(
        request, episode, form.cleaned_data["ending_reason"], form.cleaned_data["end"]
    )
    messages.success(
        request,
        gettext("Episode closed: %(reason)s.") % {"reason": episode.get_ending_reason_display()},
    )
    return redirect("client-manage", pk=pk)


@login_required
@require_POST
def episode_new(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for(request, pk, write=True)
    if clients.open_episode(client) is not None:
        messages.error(request, gettext("Close the open episode first."))
        return redirect("client-manage", pk=pk)
    clients.start_episode(request, client)
    messages.success(
        request, gettext("Welcome back: a new episode starts today; earlier ones stay below.")
    )
    return redirect("client-manage", pk=pk)


@login_required
@require_POST
def client_archive(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for_admin(request, pk)
    clients.archive(request, client)
    messages.success(request, gettext("Client archived: off the caseload, every record kept."))
    return redirect("client-manage", pk=pk)


# --- import -----------------------------------------------------------------------------------


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def client_import(request: HttpRequest) -> HttpResponse:
    """Upload a CSV: a preview with every problem first; store only on confirmation."""
    profile = scoping.require(request.user, ADMIN)
    form = ImportForm(request.POST or None, request.FILES or None)
    context: dict[str, Any] = {"form": form, "columns": imports.REQUIRED + imports.OPTIONAL}
    if request.method != "POST" or not form.is_valid():
        return render(request, "operations/client_import.html", context)
    upload = form.cleaned_data.get("file")
    text = form.cleaned_data.get("text") or ""
    problem = ""
    if upload is not None:
        if upload.size > imports.MAX_BYTES:
            problem = f"The file is larger than {imports.MAX_BYTES // 1000} kB; split it."
        else:
            try:
                text = imports.decode(upload.read())
            except UnicodeDecodeError:
                problem = "The file is not UTF-8 text: save it as “CSV UTF-8” and upload it again."
    elif not text:
        problem = "Choose a CSV file to upload."
    if problem:
        context["problems"] = [imports.Problem(0, "file", problem)]
        return render(request, "operations/client_import.html", context, status=400)
    plan = imports.check(text, profile.clinic_id)
    context.update(plan=plan, text=text, problems=plan.problems)
    if plan.ok and request.POST.get("confirm") == "yes" and upload is None:
        with transaction.atomic():
            n = imports.store(request, plan, profile.clinic_id)
        messages.success(
            request, ngettext("%(n)s client imported.", "%(n)s clients imported.", n) % {"n": n}
        )
        return redirect("caseload")
    return render(request, "operations/client_import.html", context, status=200 if plan.ok else 400)


# --- data rights ------------------------------------------------------------------------------


@never_cache
@login_required
@require_GET
def client_export(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for_admin(request, pk)
    log.record(
        request,
        log.Action.EXPORT,
        object_type="client",
        object_id=pk,
        client_id=pk,
        detail="subject access export (zip)",
    )
    data = rights.export_zip(client, generated_by=request.user.get_username())
    response = HttpResponse(data, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="client-{pk}-export.zip"'
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def client_erase(request: HttpRequest, pk: int) -> HttpResponse:
    client = scoping.get_client_for_admin(request, pk)
    form = EraseForm(request.POST or None)
    if request.method == "POST" and form.is_valid() and _fresh_second_factor(request, form):
        result = rights.erase(request, client)
        messages.success(
            request,
            (
                gettext("Client %(number)s erased: scores kept, de-identified.")
                if result.scores_kept
                else gettext("Client %(number)s erased: every record deleted.")
            )
            % {"number": result.client_id},
        )
        return redirect("caseload")
    context = {
        "client": client,
        "form": form,
        "needs_code": not second_factor.passed_recently(request),
        "keep_scores": ClinicSettings.of(client.clinic).keep_scores_on_erasure,
    }
    return render(
        request, "operations/client_erase.html", context, status=400 if form.errors else 200
    )


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def clinic_settings(request: HttpRequest) -> HttpResponse:
    profile = scoping.require(request.user, ADMIN)
    row = ClinicSettings.of(profile.clinic)
    form = SettingsForm(request.POST or None, instance=row)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            log.record(
                request,
                log.Action.UPDATE,
                object_type="clinic_settings",
                object_id=row.pk,
                detail=(
                    f"retention {row.retention_years} y, keep scores {row.keep_scores_on_erasure}, "
                    f"audit retention {row.audit_retention_years} y"
                ),
            )
        messages.success(request, gettext("Settings saved."))
        return redirect("operations-settings")
    return render(
        request, "operations/settings.html", {"form": form}, status=400 if form.errors else 200
    )
