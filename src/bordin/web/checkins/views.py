"""The client's side: ``/c/<token>`` takes the token out of the URL, ``/c/`` is the check-in.

Like Django's password reset, the first request with a valid token stores the link id in the
session and redirects to ``/c/``, so the token does not linger in the address bar, history or
referrer headers. Every unusable link (unknown, tampered, expired, revoked or used) gets the
same 404 page, which does not say which case applies. Failed lookups are rate-limited per
client address (:mod:`bordin.web.checkins.throttle`); every client page is sent with
``Cache-Control: no-store`` and a strict referrer policy (:mod:`bordin.web.checkins.privacy`).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from bordin.web.audit import log
from bordin.web.checkins import services, throttle
from bordin.web.checkins.forms import CheckinForm
from bordin.web.checkins.models import CheckinLink
from bordin.web.checkins.privacy import (
    client_page,
    end_link_session,
    link_session_alive,
    link_session_seconds,
    start_link_session,
)
from bordin.web.clinic.models import Goal
from bordin.web.i18n import activate_for_client
from bordin.web.journey.progress import client_goals
from bordin.web.journey.services import active_goals, episode_goals

SESSION_LINK = "bordin_checkin_link"
SESSION_DONE = "bordin_checkin_done"


def _invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "checkins/invalid.html", status=404)


def _too_many(request: HttpRequest) -> HttpResponse:
    response = render(request, "checkins/too_many.html", status=429)
    response["Retry-After"] = str(throttle.window())
    return response


def _build_form(
    link: CheckinLink,
    data: QueryDict | None = None,
    kind: str | None = None,  # None: from the submitted form's note, else read
    goals: list[Goal] | None = None,
) -> CheckinForm:
    """``goals``: the episode's goals when read already (inactive ones are left out).

    A submitted form is checked against the instruments its page showed (its signed note,
    ``shown``); without a valid note they are read again from the plan, and a form shown again
    gets a fresh note.
    """
    goals = active_goals(link.episode) if goals is None else [g for g in goals if g.active]
    noted = None
    if data is not None:
        noted = services.shown_instruments(link, data.get("shown", ""), link_session_seconds())
    note = ""
    if noted is not None:
        shown, kind = noted
    else:
        shown, kind, note = services.checkin_instruments_noted(link, kind)
    kwargs: dict[str, object] = {
        "instruments": shown,
        "goals": goals,
        "text_limit": settings.BORDIN_CHECKIN_TEXT_LIMIT,
        "language": link.client.preferred_language,
    }
    if data is not None:
        if note:
            data = data.copy()
            data["shown"] = note
        form = CheckinForm(data, **kwargs)  # type: ignore[arg-type]
    else:
        initial = {"idempotency_key": secrets.token_urlsafe(24), "shown": note}
        form = CheckinForm(initial=initial, **kwargs)  # type: ignore[arg-type]
    form.delivery_kind = kind
    return form


def _thanks(
    request: HttpRequest,
    link: CheckinLink,
    outcome: services.Outcome,
    goals: list[Goal] | None = None,
) -> HttpResponse:
    """``goals``: the episode's goals (:func:`~bordin.web.journey.services.episode_goals`) if
    already read."""
    clinic = link.client.clinic
    contacts = [line.strip() for line in clinic.crisis_contacts.splitlines() if line.strip()]
    return render(
        request,
        "checkins/thanks.html",
        {
            "clinic": clinic,
            "risk": outcome.risk,
            "notified": outcome.notified,
            "crisis_contacts": contacts,
            # The client's journey, if enabled.
            "client_goals": client_goals(link.episode, goals),
        },
    )


@client_page
@require_GET
def start(request: HttpRequest, token: str) -> HttpResponse:
    if throttle.blocked(request):
        return _too_many(request)  # before the lookup: the same answer for any token
    link = CheckinLink.find(token)
    if link is None or not link.is_usable():
        throttle.record_failure(request)
        return _invalid(request)
    start_link_session(request, SESSION_LINK, link.pk, SESSION_DONE)
    return redirect("checkin")


@client_page
@require_http_methods(["GET", "POST"])
def checkin(request: HttpRequest) -> HttpResponse:
    link_id = request.session.get(SESSION_LINK)
    if link_id is not None and not link_session_alive(request):
        return _invalid(request)
    post = request.method == "POST"
    # The form needs the session's kind (its instruments); a submission reads it from the
    # form's note, and its thank-you page needs the clinic's journey settings.
    found = (
        services.link_with_kind(link_id, kind=not post, journey=post)
        if isinstance(link_id, int)
        else None
    )
    if found is None:
        return _invalid(request)
    link, kind = found
    link.episode.client = link.client  # already loaded; the pages below need both
    activate_for_client(request, link.client)  # the client's language, not the browser's

    if post:
        key = request.POST.get("idempotency_key", "")
        if link.used_at is not None:
            earlier = services.completed(link, key)
            return _thanks(request, link, earlier) if earlier else _invalid(request)
        if not link.is_usable():
            return _invalid(request)
        # The goals with their earlier wordings, read once: the form rates the active ones
        # and the thank-you page shows them with their ratings.
        goals = episode_goals(link.episode)
        form = _build_form(link, request.POST, kind, goals)
        if not form.is_valid():
            if "idempotency_key" in form.errors:
                # A broken key cannot be fixed by the client: give the re-rendered form a new one.
                data = request.POST.copy()
                data["shown"] = str(form.data.get("shown", ""))  # refreshed if it was not valid
                data["idempotency_key"] = secrets.token_urlsafe(24)
                form.data = data
            return _render_form(request, link, form, status=400)
        try:
            outcome = services.submit(link, form, request, form.delivery_kind)
        except services.LinkUnavailable:
            return _invalid(request)
        return _thanks(request, link, outcome, goals)

    if link.used_at is not None:
        # The thank-you page was shown once, after the POST: a reload, "back" or the next
        # person at a shared computer ends the session instead of seeing it again.
        end_link_session(request)
        return render(request, "checkins/done.html")
    if not link.is_usable():
        return _invalid(request)
    # The form shows the client's own goals: a read of client data, by the link.
    log.record_checkin(
        request, link, log.Action.READ, object_type="checkin", detail="check-in form opened"
    )
    return _render_form(request, link, _build_form(link, kind=kind))


def _render_form(
    request: HttpRequest, link: CheckinLink, form: CheckinForm, status: int = 200
) -> HttpResponse:
    response = render(
        request,
        "checkins/checkin.html",
        {"form": form, "sections": form.sections(), "link": link, "clinic": link.client.clinic},
        status=status,
    )
    return response
