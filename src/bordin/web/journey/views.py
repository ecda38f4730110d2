"""Views of the client's journey.

Staff views fetch every client through :mod:`bordin.web.clinic.scoping` (out of scope: 404,
audited). The client's side works like the check-in: ``/j/<token>`` stores the link id in the
session and redirects to ``/j/``; every unusable link gets the same 404 page.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from bordin.web.audit import log
from bordin.web.checkins import throttle
from bordin.web.checkins.privacy import client_page, link_session_alive, start_link_session
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, Goal, StaffProfile
from bordin.web.clinic.scoping import get_client_for
from bordin.web.i18n import activate_for_client
from bordin.web.journey import matching_ui, reports, services
from bordin.web.journey.forms import AssignForm, FitCheckForm, GoalForm, IntakeForm, SettingsForm
from bordin.web.journey.models import (
    FitCheck,
    Intake,
    JourneyLink,
    JourneySettings,
    RematchRequest,
)

SESSION_LINK = "bordin_journey_link"
SESSION_DONE = "bordin_journey_done"
ADMIN_ROLES = frozenset({scoping.Role.CLINIC_ADMIN})


# --- staff: links, goals ----------------------------------------------------------------------


#: Session key of a just-issued journey link: shown once by :func:`new_link` after the
#: POST/redirect/GET, so a reload neither issues another link nor shows this one again.
NEW_LINK_KEY = "bordin_new_journey_link"


def _show_link(request: HttpRequest, client: Client, link: JourneyLink, token: str) -> HttpResponse:
    log.record(
        request,
        log.Action.CREATE,
        object_type="journey_link",
        object_id=link.pk,
        client_id=client.pk,
        detail=f"{link.purpose} link issued",
    )
    url = request.build_absolute_uri(reverse("journey-start", args=[token]))
    request.session[NEW_LINK_KEY] = [client.pk, link.pk, url]
    return redirect("journey-new-link", pk=client.pk)


@login_required
@require_GET
def new_link(request: HttpRequest, pk: int) -> HttpResponse:
    """The journey link just issued for this client, once; afterwards the client page."""
    client = get_client_for(request, pk, write=True)
    stored = request.session.get(NEW_LINK_KEY)
    if not (isinstance(stored, list) and len(stored) == 3 and stored[0] == client.pk):
        return redirect("client", pk=client.pk)
    del request.session[NEW_LINK_KEY]
    link = JourneyLink.objects.filter(pk=stored[1], client=client).first()
    if link is None:
        return redirect("client", pk=client.pk)
    return render(
        request,
        "journey/new_link.html",
        {"client": client, "link": link, "url": str(stored[2])},
    )


@login_required
@require_POST
def issue_intake_link(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk, write=True)
    with transaction.atomic():
        episode = services.current_episode(client)
        if episode is None:
            episode = client.episodes.create(start=timezone.localdate())
        if Intake.objects.filter(episode=episode).exists():
            messages.error(request, _("This client has already completed the intake."))
            return redirect("client", pk=client.pk)
        link, token = JourneyLink.issue(
            JourneyLink.Purpose.INTAKE, episode, created_by=request.user
        )
        return _show_link(request, client, link, token)


@login_required
@require_POST
def issue_fit_link(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk, write=True)
    with transaction.atomic():
        episode = services.current_episode(client)
        session = services.first_attended_session(episode) if episode else None
        if episode is None or session is None:
            messages.error(request, _("Record the first session before sending the fit check."))
            return redirect("client", pk=client.pk)
        if FitCheck.objects.filter(episode=episode).exists():
            messages.error(request, _("The client has already answered the fit check."))
            return redirect("client", pk=client.pk)
        link, token = JourneyLink.issue(
            JourneyLink.Purpose.FIT_CHECK, episode, session=session, created_by=request.user
        )
        return _show_link(request, client, link, token)


@login_required
@require_POST
def issue_graduation_link(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk, write=True)
    with transaction.atomic():
        episode = services.current_episode(client)
        if episode is None:
            raise Http404("No episode")
        link, token = JourneyLink.issue(
            JourneyLink.Purpose.GRADUATION, episode, created_by=request.user
        )
        return _show_link(request, client, link, token)


@login_required
@require_POST
def revoke_link(request: HttpRequest, pk: int, link_pk: int) -> HttpResponse:
    client = get_client_for(request, pk, write=True)
    if not services.revoke_link(request, client, link_pk):
        raise Http404("No such link")
    messages.success(request, _("The link is revoked; it can no longer be used."))
    return redirect("client", pk=client.pk)


def _goal_error(request: HttpRequest, client: Client, form: GoalForm) -> HttpResponse:
    return render(request, "journey/goal_error.html", {"client": client, "form": form}, status=400)


@login_required
@require_POST
def add_goal(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk, write=True)
    form = GoalForm(request.POST)
    if not form.is_valid():
        return _goal_error(request, client, form)
    services.add_goal(request, client, form.cleaned_data["text"])
    messages.success(request, _("Goal added."))
    return redirect("client", pk=client.pk)


@login_required
@require_POST
def revise_goal(request: HttpRequest, pk: int, goal_pk: int) -> HttpResponse:
    client = get_client_for(request, pk, write=True)
    goal = Goal.objects.filter(pk=goal_pk, episode__client=client, active=True).first()
    if goal is None:
        raise Http404("No such goal")
    form = GoalForm(request.POST)
    if not form.is_valid():
        return _goal_error(request, client, form)
    if form.cleaned_data["text"] == goal.text:
        messages.info(request, _("The wording is unchanged."))
        return redirect("client", pk=client.pk)
    try:
        services.revise_goal(request, client, goal, form.cleaned_data["text"])
    except services.LinkUnavailable:
        raise Http404("No such goal") from None
    messages.success(request, _("Goal reworded; the earlier wording and its ratings are kept."))
    return redirect("client", pk=client.pk)


# --- staff: graduation summary and progress report --------------------------------------------


@login_required
@require_GET
def graduation(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk)
    journey = reports.build(client)
    return render(
        request,
        "journey/graduation.html",
        {"journey": journey, "clinic": client.clinic, "staff_view": True},
    )


@login_required
@require_GET
def graduation_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk)
    return _graduation_pdf(request, client, None)


def _graduation_pdf(request: HttpRequest, client: Client, link: JourneyLink | None) -> HttpResponse:
    journey = reports.build(client)
    pdf = reports.render_pdf(
        "journey/graduation_pdf.html", {"journey": journey, "clinic": client.clinic}
    )
    if link is None:
        log.record(
            request,
            log.Action.EXPORT,
            object_type="graduation_pdf",
            object_id=client.pk,
            client_id=client.pk,
        )
    else:
        services.record_link_event(request, link, log.Action.EXPORT, "graduation_pdf", client.pk)
    return reports.pdf_response(pdf, "your-journey.pdf")


@login_required
@require_GET
def progress_report_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk)
    journey = reports.build(client, for_staff=True)
    pdf = reports.render_pdf(
        "journey/report_pdf.html",
        {"journey": journey, "clinic": client.clinic, "generated": timezone.now()},
    )
    log.record(
        request,
        log.Action.EXPORT,
        object_type="progress_report",
        object_id=client.pk,
        client_id=client.pk,
    )
    return reports.pdf_response(pdf, f"progress-report-{client.pk}.pdf")


# --- clinic admin: re-match requests and settings ---------------------------------------------


def _admin(request: HttpRequest) -> StaffProfile:
    return scoping.require(request.user, ADMIN_ROLES)


@login_required
@require_GET
def rematch_list(request: HttpRequest) -> HttpResponse:
    profile = _admin(request)
    requests_ = list(
        RematchRequest.objects.filter(clinic_id=profile.clinic_id)
        .select_related("client__therapist", "new_therapist")
        .order_by("status", "-created_at", "-pk")
    )
    scoping.record_list(
        request, "rematch_request", [(r.pk, r.client_id) for r in requests_], "re-match list"
    )
    return render(
        request,
        "journey/rematch_list.html",
        {
            "requests": requests_,
            "settings_form": SettingsForm(
                initial={
                    "show_goals_to_client": JourneySettings.for_clinic(
                        profile.clinic_id
                    ).show_goals_to_client
                }
            ),
        },
    )


def _get_rematch(request: HttpRequest, pk: int) -> RematchRequest:
    profile = scoping.staff_profile(request.user)
    found = None
    if profile is not None and profile.is_clinic_admin:
        found = (
            RematchRequest.objects.filter(pk=pk, clinic_id=profile.clinic_id)
            .select_related("client__therapist", "client__clinic", "new_therapist")
            .first()
        )
    if found is None:
        if getattr(request.user, "is_authenticated", False):
            log.record(request, log.Action.DENIED, object_type="rematch_request", object_id=pk)
        raise Http404("No such request")
    return found


def _therapists(rematch: RematchRequest) -> list[Any]:
    return list(
        get_user_model()
        .objects.filter(
            staff__clinic_id=rematch.clinic_id,
            staff__role__in=[scoping.Role.THERAPIST, scoping.Role.SUPERVISOR],
            is_active=True,
        )
        .exclude(pk=rematch.client.therapist_id)
        .order_by("last_name", "first_name", "username")
    )


def _rematch_page(
    request: HttpRequest, rematch: RematchRequest, form: AssignForm | None = None, status: int = 200
) -> HttpResponse:
    therapists = _therapists(rematch)
    intake = Intake.objects.filter(episode_id=rematch.episode_id).first()
    shortlist = matching_ui.build(rematch, intake, therapists)
    if form is None:
        # The assign list follows the shortlist and starts on its top-ranked therapist, not on
        # the first name in the alphabet (issue 15).
        rank = {tid: i for i, tid in enumerate(shortlist.ranked_ids)}
        ordered = sorted(therapists, key=lambda t: rank.get(str(t.pk), len(rank)))
        initial = {"therapist": shortlist.ranked_ids[0]} if shortlist.ranked_ids else {}
        form = AssignForm(therapists=ordered, initial=initial)
    return render(
        request,
        "journey/rematch.html",
        {
            "rematch": rematch,
            "intake": intake,
            "form": form,
            "shortlist": shortlist,
        },
        status=status,
    )


@login_required
@require_GET
def rematch_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rematch = _get_rematch(request, pk)
    log.record(
        request,
        log.Action.READ,
        object_type="rematch_request",
        object_id=rematch.pk,
        client_id=rematch.client_id,
    )
    return _rematch_page(request, rematch)


@login_required
@require_POST
def rematch_assign(request: HttpRequest, pk: int) -> HttpResponse:
    rematch = _get_rematch(request, pk)
    therapists = _therapists(rematch)
    form = AssignForm(request.POST, therapists=therapists)
    if rematch.status != RematchRequest.Status.OPEN:
        messages.error(request, _("This request has already been assigned."))
        return redirect("journey-rematch", pk=rematch.pk)
    if not form.is_valid():
        return _rematch_page(request, rematch, form, status=400)
    chosen = next(t for t in therapists if t.pk == form.cleaned_data["therapist"])
    try:
        new_client = services.assign_rematch(request, rematch.pk, chosen)
    except services.LinkUnavailable:
        messages.error(request, _("This request has already been assigned."))
        return redirect("journey-rematch", pk=rematch.pk)
    messages.success(
        request,
        _("%(client)s now has a new episode with %(therapist)s; the intake was carried over.")
        % {
            "client": new_client.display_name,
            "therapist": chosen.get_full_name() or chosen.get_username(),
        },
    )
    return redirect("client", pk=new_client.pk)


@login_required
@require_POST
def journey_settings(request: HttpRequest) -> HttpResponse:
    profile = _admin(request)
    form = SettingsForm(request.POST)
    if not form.is_valid():  # pragma: no cover - a checkbox cannot be invalid
        raise PermissionDenied
    with transaction.atomic():
        JourneySettings.objects.update_or_create(
            clinic_id=profile.clinic_id,
            defaults={"show_goals_to_client": form.cleaned_data["show_goals_to_client"]},
        )
        log.record(
            request,
            log.Action.UPDATE,
            object_type="journey_settings",
            object_id=profile.clinic_id,
            detail=f"show goals to client: {form.cleaned_data['show_goals_to_client']}",
        )
    messages.success(request, _("Settings saved."))
    return redirect("journey-rematch-list")


# --- the client's side ------------------------------------------------------------------------


def _invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "journey/invalid.html", status=404)


@client_page
@require_http_methods(["GET", "POST"])
def start(request: HttpRequest, token: str) -> HttpResponse:
    if throttle.blocked(request):
        response = render(request, "checkins/too_many.html", status=429)
        response["Retry-After"] = str(throttle.window())
        return response  # before the lookup: the same answer for any token
    link = JourneyLink.find(token)
    if link is None or not link.is_usable():
        throttle.record_failure(request, "journey_link")
        return _invalid(request)
    activate_for_client(request, link.client)  # the client's language, not the browser's
    if link.purpose == JourneyLink.Purpose.GRADUATION:
        if request.method != "POST":
            # A summary link opens once: a GET (a mail scanner, a link preview) only shows a
            # button, so that nothing but a person's click uses it up.
            return render(request, "journey/open_summary.html", {"clinic": link.client.clinic})
        with transaction.atomic():
            updated = JourneyLink.objects.filter(pk=link.pk, used_at__isnull=True).update(
                used_at=timezone.now(), used_key="opened"
            )
            if not updated:
                return _invalid(request)
        start_link_session(request, SESSION_LINK, link.pk, SESSION_DONE)
        request.session[SESSION_DONE] = "graduation"
        return redirect("journey-client")
    if request.method != "GET":
        return _invalid(request)
    start_link_session(request, SESSION_LINK, link.pk, SESSION_DONE)
    return redirect("journey-client")


def _session_link(request: HttpRequest) -> JourneyLink | None:
    link_id = request.session.get(SESSION_LINK)
    if not isinstance(link_id, int) or not link_session_alive(request):
        return None
    return (
        JourneyLink.objects.select_related("client__clinic", "client__therapist", "episode")
        .filter(pk=link_id)
        .first()
    )


def _new_key() -> str:
    return secrets.token_urlsafe(24)


@client_page
@require_http_methods(["GET", "POST"])
def client_step(request: HttpRequest) -> HttpResponse:
    link = _session_link(request)
    if link is None:
        return _invalid(request)
    activate_for_client(request, link.client)  # the client's language, not the browser's
    if link.purpose == JourneyLink.Purpose.GRADUATION:
        if request.method != "GET" or request.session.get(SESSION_DONE) != "graduation":
            return _invalid(request)
        if link.revoked_at is not None or timezone.now() >= link.expires_at:
            return _invalid(request)
        journey = reports.build(link.client)
        services.record_link_event(request, link, log.Action.READ, "graduation_summary", link.pk)
        return render(
            request,
            "journey/graduation.html",
            {"journey": journey, "clinic": link.client.clinic, "staff_view": False},
        )
    form_class: type[IntakeForm] | type[FitCheckForm] = (
        IntakeForm if link.purpose == JourneyLink.Purpose.INTAKE else FitCheckForm
    )
    if request.method == "POST":
        key = request.POST.get("idempotency_key", "")
        if link.used_at is not None:
            if key and key == link.used_key:
                return _client_thanks(request, link)
            return _invalid(request)
        if not link.is_usable():
            return _invalid(request)
        form = form_class(request.POST)
        if not form.is_valid():
            if "idempotency_key" in form.errors:
                data = request.POST.copy()
                data["idempotency_key"] = _new_key()
                form.data = data
            return _client_form(request, link, form, status=400)
        try:
            if isinstance(form, IntakeForm):
                services.submit_intake(link.pk, form, request)
            else:
                services.submit_fit_check(link.pk, form, request)
        except services.LinkUnavailable:
            return _invalid(request)
        request.session[SESSION_DONE] = key
        link.refresh_from_db()
        return _client_thanks(request, link)
    if link.used_at is not None:
        done = request.session.get(SESSION_DONE, "")
        if done and done == link.used_key:
            return _client_thanks(request, link)
        return _invalid(request)
    if not link.is_usable():
        return _invalid(request)
    return _client_form(request, link, form_class(initial={"idempotency_key": _new_key()}))


def _client_form(
    request: HttpRequest, link: JourneyLink, form: IntakeForm | FitCheckForm, status: int = 200
) -> HttpResponse:
    template = (
        "journey/intake.html"
        if link.purpose == JourneyLink.Purpose.INTAKE
        else "journey/fit_check.html"
    )
    therapist = link.client.therapist
    response = render(
        request,
        template,
        {
            "form": form,
            "link": link,
            "clinic": link.client.clinic,
            "therapist_name": therapist.first_name or _("your therapist"),
            "scales": [(form[n], lo, hi) for n, lo, hi in getattr(form, "SCALES", ())],
        },
        status=status,
    )
    return response


def _client_thanks(request: HttpRequest, link: JourneyLink) -> HttpResponse:
    fit = FitCheck.objects.filter(link_id=link.pk).first()
    return render(
        request,
        "journey/client_thanks.html",
        {"link": link, "clinic": link.client.clinic, "fit": fit},
    )


@client_page
@require_GET
def client_pdf(request: HttpRequest) -> HttpResponse:
    link = _session_link(request)
    if (
        link is None
        or link.purpose != JourneyLink.Purpose.GRADUATION
        or link.revoked_at is not None
        or timezone.now() >= link.expires_at
        or request.session.get(SESSION_DONE) != "graduation"
    ):
        return _invalid(request)
    activate_for_client(request, link.client)
    return _graduation_pdf(request, link.client, link)
