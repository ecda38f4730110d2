"""Recording a session: one path for the web form and the REST API.

What follows from a recorded session happens here, whoever records it: the audit event, a
withdrawal check after a missed or cancelled session, a check-in link for an attended one, and
the delivery worker's message (the check-in, or the fit check after session 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest

from bordin.web.alerts.models import Alert
from bordin.web.alerts.rules import check_withdrawal
from bordin.web.audit import log
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Client, Episode, Session
from bordin.web.delivery import services as delivery


@dataclass(frozen=True)
class Recorded:
    session: Session
    link: CheckinLink | None
    token: str | None
    withdrawal: Alert | None


def open_episode(client: Client, day: date) -> Episode:
    """The client's open episode; a new one starting on ``day`` when none is open."""
    episode = client.episodes.filter(status=Episode.Status.OPEN).order_by("-start").first()
    if episode is None:
        episode = Episode.objects.create(client=client, start=day)
    return episode


def record_link(request: HttpRequest, link: CheckinLink, detail: str) -> None:
    """The audit event of an issued check-in link."""
    log.record(
        request,
        log.Action.CREATE,
        object_type="checkin_link",
        object_id=link.pk,
        client_id=link.client_id,
        detail=f"{detail}, session {link.session.number}",
    )


def record(
    request: HttpRequest, episode: Episode, day: date, attendance: str, *, via: str = ""
) -> Recorded:
    """Record the next session of ``episode`` (call inside a transaction); ``via``: " (API)"."""
    number = (episode.sessions.aggregate(m=Max("number"))["m"] or 0) + 1
    session = Session.objects.create(
        episode=episode, number=number, date=day, attendance=attendance
    )
    client = episode.client
    log.record(
        request,
        log.Action.CREATE,
        object_type="session",
        object_id=session.pk,
        client_id=client.pk,
        detail=f"session {number}, {session.attendance}{via}",
    )
    withdrawal = None
    if session.attendance != Session.Attendance.ATTENDED:
        withdrawal = check_withdrawal(client, episode)
    link, token = None, None
    if session.attendance == Session.Attendance.ATTENDED and settings.BORDIN_ISSUE_LINK_ON_SESSION:
        link, token = CheckinLink.issue(session, created_by=request.user)
        record_link(request, link, f"issued with the session{via}")
    # Sent by the worker (email or text, with consent); the fit check after session 1.
    delivery.on_session_recorded(session, link, token, request.user)
    return Recorded(session, link, token, withdrawal)
