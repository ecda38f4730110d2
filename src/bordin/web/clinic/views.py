"""Staff views: caseload, client page, therapist rating, sessions and check-in links.

Plain function views. Every record is fetched through :mod:`bordin.web.clinic.scoping`, so a
record outside the user's scope is a 404 and every read is in the audit log; each write is
recorded with :func:`bordin.web.audit.log.record` inside the write's transaction.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from bordin.web.alerts.rules import check_divergence
from bordin.web.audit import log
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic import analysis, client_page, scoping, sessions
from bordin.web.clinic.caseload import caseload as build_caseload
from bordin.web.clinic.caseload import rows_html
from bordin.web.clinic.forms import ResolveForm, SessionForm, TherapistRatingForm
from bordin.web.clinic.models import Client, Instrument, Response, Session
from bordin.web.clinic.scoping import get_client_for, staff_profile
from bordin.web.delivery import services as delivery
from bordin.web.journey import panels as journey_panels


@login_required
@require_GET
def caseload(request: HttpRequest) -> HttpResponse:
    if scoping.has_role(request.user, {scoping.Role.RESEARCHER}):
        return redirect("exports")  # researchers have no caseload, only de-identified exports
    scoping.require(request.user, scoping.CLINICAL_ROLES)  # 403 without a staff profile
    rows = build_caseload(request.user)
    scoping.record_list(request, "client", [(r.client.pk, r.client.pk) for r in rows], "caseload")
    profile = staff_profile(request.user)
    return render(
        request,
        "clinic/caseload.html",
        {
            "rows": rows,
            "profile": profile,
            "table_rows": rows_html(rows, show_therapist=bool(profile and profile.is_clinic_admin)),
        },
    )


def _client_page(
    request: HttpRequest,
    client: Client,
    *,
    rating_form: TherapistRatingForm | None = None,
    session_form: SessionForm | None = None,
    new_link: str | None = None,
    status: int = 200,
) -> HttpResponse:
    if request.method != "GET":
        # A write view showing the page again (form errors, a new link): that is a read too.
        # GET comes from client_detail, whose get_client_for already recorded it.
        log.record(
            request, log.Action.READ, object_type="client", object_id=client.pk, client_id=client.pk
        )
    page = client_page.build(client)
    sessions = Session.objects.filter(episode__client=client).order_by("-date", "-number")
    links = list(
        CheckinLink.objects.filter(client=client, used_at__isnull=True, revoked_at__isnull=True)
        .filter(expires_at__gt=timezone.now())
        .select_related("session")
    )
    return render(
        request,
        "clinic/client.html",
        client_page.context(
            page,
            rating_form=rating_form or TherapistRatingForm(sessions=sessions),
            session_form=session_form or SessionForm(),
            recorded_sessions=list(sessions[:20]),
            attendance_choices=Session.Attendance.choices,
            resolve_form=ResolveForm(),
            open_links=links,
            new_link=new_link,
            can_issue=page.episode is not None and sessions.exists(),
            can_write=scoping.can_write(request.user, client),
            link_hours=settings.BORDIN_CHECKIN_LINK_HOURS,
            journey=journey_panels.build(client, request.user),
        ),
        status=status,
    )


#: Session key of a just-issued check-in link, shown once by the client page after the
#: POST/redirect/GET (the token is never in a URL, and a reload does not issue another).
NEW_LINK_KEY = "bordin_new_link"


def _show_link_once(request: HttpRequest, client: Client, token: str) -> HttpResponse:
    request.session[NEW_LINK_KEY] = [client.pk, _absolute_link(request, token)]
    return redirect("client", pk=client.pk)


@login_required
@require_GET
def client_detail(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk)
    new_link = None
    stored = request.session.get(NEW_LINK_KEY)
    if isinstance(stored, list) and len(stored) == 2 and stored[0] == client.pk:
        new_link = str(stored[1])
        del request.session[NEW_LINK_KEY]
    return _client_page(request, client, new_link=new_link)


@login_required
@require_POST
def therapist_rating(request: HttpRequest, pk: int) -> HttpResponse:
    client = get_client_for(request, pk, write=True)
    sessions = Session.objects.filter(episode__client=client).order_by("-date", "-number")
    form = TherapistRatingForm(request.POST, sessions=sessions)
    if not form.is_valid():
        return _client_page(request, client, rating_form=form, status=400)
    session = form.cleaned_data["session"]
    inst = analysis.registry()[analysis.THERAPIST_ALLIANCE]
    answers = form.answers()
    score = inst.score(answers)
    with transaction.atomic():
        rating, created = Response.objects.update_or_create(
            session=session,
            instrument=Instrument.snapshot(inst),
            respondent=Response.Respondent.THERAPIST,
            defaults={
                "answers": answers,
                "total": score.total,
                "rated_by": request.user,
                "submitted_at": timezone.now(),
            },
            create_defaults={
                "answers": answers,
                "total": score.total,
                "rated_by": request.user,
                "submitted_at": timezone.now(),
                "idempotency_key": f"therapist:{secrets.token_urlsafe(16)}",
            },
        )
        log.record(
            request,
            log.Action.CREATE if created else log.Action.UPDATE,
            object_type="therapist_rating",
            object_id=rating.pk,
            client_id=client.pk,
            detail=f"session {session.number}",
        )
        alert = check_divergence(client, session)
    messages.success(request, _("Your rating for session %(n)s is saved.") % {"n": session.number})
    if alert is not None:
        messages.warning(request, _("Your rating and the client's differ by 2 points or more."))
    return redirect("client", pk=client.pk)


@login_required
@require_POST
def record_session(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a session in the client's current episode; issue a check-in link if attended.

    Idempotent per (episode, date): a second POST for a date that already has a session (a
    reload, a double click) records nothing, unless the therapist ticked "another session on
    this day". POST/redirect/GET: the answer is always a redirect to the client page.
    """
    client = get_client_for(request, pk, write=True)
    form = SessionForm(request.POST)
    if not form.is_valid():
        return _client_page(request, client, session_form=form, status=400)
    day = form.cleaned_data["date"]
    with transaction.atomic():
        episode = sessions.open_episode(client, day)
        same_day = episode.sessions.filter(date=day).order_by("number").first()
        if same_day is not None and not form.cleaned_data["another_on_same_day"]:
            messages.info(
                request,
                _(
                    "Session %(number)s on %(date)s is already recorded; nothing was added. "
                    "To record a second session that day, tick 'another session on the "
                    "same day'."
                )
                % {"number": same_day.number, "date": date_format(day, "j M Y")},
            )
            return redirect("client", pk=client.pk)
        done = sessions.record(request, episode, day, form.cleaned_data["attendance"])
    number, withdrawal, token = done.session.number, done.withdrawal, done.token
    messages.success(request, _("Session %(n)s recorded.") % {"n": number})
    if withdrawal is not None:
        messages.warning(request, _("A withdrawal alert was raised: reach out to the client."))
    if token:
        return _show_link_once(request, client, token)
    return redirect("client", pk=client.pk)


def _own_session(client: Client, session_pk: int) -> Session:
    session = Session.objects.filter(pk=session_pk, episode__client=client).first()
    if session is None:
        raise Http404("No such session")
    return session


@login_required
@require_POST
def correct_session(request: HttpRequest, pk: int, session_pk: int) -> HttpResponse:
    """Correct a recorded session's date or attendance (audited with the old values)."""
    client = get_client_for(request, pk, write=True)
    session = _own_session(client, session_pk)
    form = SessionForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, _("The correction was not saved: give a valid date and attendance.")
        )
        return redirect("client", pk=client.pk)
    before = f"{session.date:%Y-%m-%d} {session.attendance}"
    with transaction.atomic():
        session.date = form.cleaned_data["date"]
        session.attendance = form.cleaned_data["attendance"]
        session.save(update_fields=["date", "attendance"])
        log.record(
            request,
            log.Action.UPDATE,
            object_type="session",
            object_id=session.pk,
            client_id=client.pk,
            detail=f"session {session.number} corrected: {before} -> "
            f"{session.date:%Y-%m-%d} {session.attendance}",
        )
    messages.success(request, _("Session %(n)s corrected.") % {"n": session.number})
    return redirect("client", pk=client.pk)


@login_required
@require_POST
def delete_session(request: HttpRequest, pk: int, session_pk: int) -> HttpResponse:
    """Delete a session recorded by mistake, if nothing was answered for it yet."""
    client = get_client_for(request, pk, write=True)
    session = _own_session(client, session_pk)
    if session.responses.exists() or session.goal_ratings.exists():
        messages.error(
            request,
            _(
                "Session %(number)s has answers (a check-in or your rating), so it cannot be "
                "deleted; correct its date or attendance instead."
            )
            % {"number": session.number},
        )
        return redirect("client", pk=client.pk)
    with transaction.atomic():
        log.record(
            request,
            log.Action.UPDATE,
            object_type="session",
            object_id=session.pk,
            client_id=client.pk,
            detail=f"session {session.number} of {session.date:%Y-%m-%d} deleted "
            f"({session.attendance})",
        )
        session.delete()  # its unused check-in links go with it
    messages.success(request, _("Session %(n)s deleted.") % {"n": session.number})
    return redirect("client", pk=client.pk)


@login_required
@require_POST
def issue_link(request: HttpRequest, pk: int) -> HttpResponse:
    """A fresh check-in link for the client's latest attended session without a check-in."""
    client = get_client_for(request, pk, write=True)
    session = (
        Session.objects.filter(episode__client=client, attendance=Session.Attendance.ATTENDED)
        .exclude(responses__respondent=Response.Respondent.CLIENT)
        .order_by("-date", "-number")
        .first()
    )
    if session is None:
        messages.error(request, _("Every attended session already has a check-in."))
        return redirect("client", pk=client.pk)
    try:
        with transaction.atomic():
            link, token = CheckinLink.issue(session, created_by=request.user)
            sessions.record_link(request, link, "issued")
            delivery.close_open_deliveries(session, session.episode, "checkin")
            delivery.deliver_link("checkin", link, token, session=session)
    except IntegrityError:  # pragma: no cover - a 256-bit collision
        raise Http404 from None
    return _show_link_once(request, client, token)


@login_required
@require_POST
def revoke_link(request: HttpRequest, pk: int, link_pk: int) -> HttpResponse:
    client = get_client_for(request, pk, write=True)
    with transaction.atomic():
        updated = CheckinLink.objects.filter(
            pk=link_pk, client=client, revoked_at__isnull=True, used_at__isnull=True
        ).update(revoked_at=timezone.now())
        if not updated:
            raise Http404("No such link")
        log.record(
            request,
            log.Action.UPDATE,
            object_type="checkin_link",
            object_id=link_pk,
            client_id=client.pk,
            detail="revoked",
        )
    messages.success(request, _("The link is revoked; it can no longer be used."))
    return redirect("client", pk=client.pk)


def _absolute_link(request: HttpRequest, token: str) -> str:
    return request.build_absolute_uri(reverse("checkin-start", args=[token]))
