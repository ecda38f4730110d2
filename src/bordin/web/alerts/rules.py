"""When alerts are raised, and their lifecycle. Signals themselves come from bordin.measures.

Every alert carries a ``dedupe_key`` naming its cause (kind, client, session), unique in the
database; :func:`raise_alert` uses ``get_or_create`` on it inside the caller's transaction, so
a cause is never raised twice, even by two concurrent submissions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from bordin.web import i18n
from bordin.web.alerts.models import Alert
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Client as ClinicClient
from bordin.web.clinic.models import Episode, Response, Session

if TYPE_CHECKING:
    from bordin.measures.ruptures import Rupture

Kind = Alert.Kind


class TransitionError(ValueError):
    """An alert cannot move to the requested status; the message says why."""


def dedupe_key(kind: str, client: ClinicClient, session: Session | None) -> str:
    return f"{kind}:c{client.pk}:s{session.pk if session else '-'}"


def for_therapist(client: ClinicClient) -> Any:
    """Write an alert's text in the language of the client's therapist (their account page's
    choice, else the default language): it is stored as written, for the staff who read it."""
    profile = getattr(client.therapist, "staff", None)
    return translation.override(i18n.supported(profile.language if profile else None))


def raise_alert(
    client: ClinicClient, kind: str, session: Session | None, detail: str
) -> tuple[Alert, bool]:
    """Create the alert for this cause unless it exists; returns ``(alert, created)``."""
    return Alert.objects.get_or_create(
        dedupe_key=dedupe_key(kind, client, session),
        defaults={
            "clinic_id": client.clinic_id,
            "client": client,
            "session": session,
            "kind": kind,
            "detail": detail,
        },
    )


def check_risk(client: ClinicClient, session: Session, *responses: Response | None) -> Alert | None:
    """A risk alert when any of the responses has an answer at an item's risk threshold.

    Which items are risk items comes from each instrument's definition (``risk_at``: the
    wellbeing check-in's safety question, PHQ-9's item 9 above 0, ...).
    """
    flagged = [r for r in responses if r is not None and r.risk_flagged]
    if not flagged:
        return None
    first = flagged[0]
    with for_therapist(client):
        if first.instrument.code == analysis.WELLBEING:
            detail = gettext(
                "At session %(number)s the client answered the safety question with a "
                "possible risk of self-harm. Contact them today."
            ) % {"number": session.number}
        else:
            detail = gettext(
                "At session %(number)s the client's answers to %(code)s include a possible "
                "risk of self-harm. Contact them today."
            ) % {"number": session.number, "code": first.instrument.code}
    alert, _ = raise_alert(client, Kind.RISK, session, detail)
    return alert


def check_rupture(
    client: ClinicClient, session: Session, data: analysis.EpisodeData
) -> Alert | None:
    found = [
        r
        for r in analysis.ruptures(data.scores(analysis.ALLIANCE), client.clinic_id)
        if r.session == session.number and r.status in ("open", "unrepaired")
    ]
    if not found:
        return None
    with for_therapist(client):
        detail = rupture_detail(found[0], data)
    alert, _ = raise_alert(client, Kind.RUPTURE, session, detail)
    return alert


def rupture_detail(rupture: Rupture, data: analysis.EpisodeData) -> str:
    part = analysis.part_that_dropped_most(data.items, rupture)
    from bordin.web.clinic.client_page import PART_NAMES

    said = gettext(
        "The client's alliance rating fell %(drop)s points from session %(previous)s to "
        "session %(session)s."
    ) % {
        "drop": f"{rupture.drop:g}",
        "previous": rupture.previous_session,
        "session": rupture.session,
    }
    if part:
        said += " " + gettext("%(part)s fell most (%(points)s points).") % {
            "part": str(PART_NAMES[part[0]]).split(" (")[0].capitalize(),
            "points": f"{part[1]:g}",
        }
    return said


def check_withdrawal(client: ClinicClient, episode: Episode) -> Alert | None:
    """A missed or cancelled session, or an unplanned ending, within two sessions after a
    rupture or alliance drop (:mod:`bordin.measures.withdrawal`); raised once per session."""
    from bordin.measures.rupture_rules import client_threshold
    from bordin.measures.withdrawal import find

    sessions = list(episode.sessions.order_by("number").values_list("pk", "number", "attendance"))
    if not sessions:
        return None
    data = analysis.episode_data(episode, comments=False)
    ending = episode.ending_reason if episode.status == Episode.Status.CLOSED else None
    alliance = data.scores(analysis.ALLIANCE)
    rule = analysis.rupture_setting(client.clinic_id)
    found = find(
        alliance,
        {number: attendance for _pk, number, attendance in sessions},
        threshold=client_threshold(alliance, rule),
        ending_reason=ending or None,
        last_session=sessions[-1][1],
    )
    if found is None:
        return None
    session = Session.objects.get(pk=next(pk for pk, n, _a in sessions if n == found.session))
    with for_therapist(client):
        what = {
            "missed": gettext("The client missed session %(number)s without notice"),
            "cancelled": gettext("The client cancelled session %(number)s"),
            "late_cancelled": gettext("The client cancelled session %(number)s at short notice"),
        }.get(found.reason, gettext("The episode ended unplanned (%(reason)s)")) % {
            "number": found.session,
            "reason": found.reason.removeprefix("ended: "),
        }
        marker = gettext("rupture") if found.marker == "rupture" else gettext("drop")
        detail = gettext(
            "%(what)s after an alliance %(marker)s at session %(session)s (%(drop)s points). "
            "Staying away after a hard session is a common sign of a withdrawal rupture: "
            "reach out."
        ) % {
            "what": what,
            "marker": marker,
            "session": found.marker_session,
            "drop": f"{found.drop:g}",
        }
    alert, _ = raise_alert(client, Kind.WITHDRAWAL, session, detail)
    return alert


def check_divergence(
    client: ClinicClient, session: Session, data: analysis.EpisodeData | None = None
) -> Alert | None:
    """Therapist's rating at least 2 points above the client's, on goals, tasks and bond.

    ``data``: the episode's scores when the caller has them already (saves a query).
    """
    if data is not None:
        mine, theirs = data.therapist.get(session.number), data.items.get(session.number)
    else:
        responses = {
            r.respondent: r
            for r in Response.objects.filter(
                session=session,
                instrument__code__in=[analysis.ALLIANCE, analysis.THERAPIST_ALLIANCE],
            )
        }
        therapist, client_alliance = responses.get("therapist"), responses.get("client")
        mine = therapist.total if therapist else None
        theirs = client_alliance.answers if client_alliance else None
    if mine is None or theirs is None:
        return None
    comparable = analysis.comparable_client_alliance(theirs)
    if comparable is None or not analysis.is_divergent(mine, comparable):
        return None
    with for_therapist(client):
        detail = gettext(
            "At session %(number)s you rated goals, tasks and bond %(mine)s on average; the "
            "client rated them %(theirs)s."
        ) % {"number": session.number, "mine": f"{mine:.1f}", "theirs": f"{comparable:.1f}"}
    alert, _ = raise_alert(client, Kind.DIVERGENCE, session, detail)
    return alert


def check_not_on_track(
    client: ClinicClient, session: Session, data: analysis.EpisodeData, model: Any = None
) -> Alert | None:
    """Outcome worse than expected for this session; raised once while one is open."""
    code = data.outcome_code()
    if code is None:
        return None
    if model is None:
        model = analysis.reference_model(client.clinic, code)
    points = analysis.trajectory(model, data.scores(code))
    now = [p for p in points if p.session == session.number and p.status == "not_on_track"]
    if not now:
        return None
    if Alert.objects.filter(
        client=client, kind=Kind.NOT_ON_TRACK, status__in=Alert.OPEN_STATUSES
    ).exists():
        return None
    inst = analysis.registry()[code]
    with for_therapist(client):
        detail = gettext(
            "%(measure)s at session %(number)s is %(score)s, worse than expected for clients "
            "who started at the same level (expected about %(expected)s)."
        ) % {
            "measure": inst.name.split(" (")[0],
            "number": session.number,
            "score": f"{now[0].score:g}",
            "expected": f"{now[0].expected:.1f}",
        }
    alert, _ = raise_alert(client, Kind.NOT_ON_TRACK, session, detail)
    return alert


def risk_at_once(session: Session, responses: Sequence[Response | None]) -> list[Alert]:
    """The alert a client's check-in raises inside its own transaction: a risk, at once.

    The check-in's other rules run in the worker (:func:`enqueue_checkin_rules`).
    """
    alert = check_risk(session.episode.client, session, *responses)
    return [alert] if alert is not None else []


def enqueue_checkin_rules(session: Session) -> None:
    """Have the worker run the check-in's other rules (:mod:`bordin.web.alerts.tasks`); call
    inside the submission's transaction, so the task is stored with the check-in or not at
    all."""
    from bordin.web.alerts.tasks import checkin_alerts

    checkin_alerts.enqueue(session.pk)


def evaluate_stored_checkin(session_id: int) -> list[Alert]:
    """:func:`evaluate_checkin` for a stored check-in (the worker's task): its client responses
    read back, the clinic's expired outcome models refitted first."""
    session = (
        Session.objects.select_related("episode__client__clinic").filter(pk=session_id).first()
    )
    if session is None:  # deleted since (the client's data was erased)
        return []
    responses = list(
        Response.objects.filter(session=session, respondent=Response.Respondent.CLIENT)
        .select_related("instrument")
        .order_by("pk")
    )
    if not responses:
        return []
    analysis.warm_reference_models(session.episode.client.clinic)
    by_code = {r.instrument.code: r for r in responses}
    builtin = (analysis.ALLIANCE, analysis.WELLBEING)
    others = [r for r in responses if r.instrument.code not in builtin]
    with transaction.atomic():
        return evaluate_checkin(
            session, by_code.get(analysis.ALLIANCE), by_code.get(analysis.WELLBEING), others
        )


def evaluate_checkin(
    session: Session,
    alliance: Response | None,
    wellbeing: Response | None,
    others: Sequence[Response] = (),
) -> list[Alert]:
    """All alerts a client's check-in raises. Call inside the submission's transaction.

    ``others``: the check-in's responses to further (imported) instruments.
    """
    client = session.episode.client
    data = analysis.episode_data(session.episode, comments=False)
    outcome = wellbeing or any(r.instrument.code in analysis.OUTCOME_CODES for r in others)
    found = [
        check_risk(client, session, wellbeing, *others),
        check_rupture(client, session, data) if alliance else None,
        check_divergence(client, session, data),
        check_not_on_track(client, session, data) if outcome else None,
    ]
    return [a for a in found if a is not None]


# ------------------------------------------------------------------------------- lifecycle


@transaction.atomic
def acknowledge(alert: Alert, user: Any) -> Alert:
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.status != Alert.Status.NEW:
        raise TransitionError(
            f"This alert is {alert.get_status_display().lower()}; only a new alert can be "
            "acknowledged."
        )
    alert.status = Alert.Status.ACKNOWLEDGED
    alert.acknowledged_at = timezone.now()
    alert.acknowledged_by = user
    alert.save()
    return alert


@transaction.atomic
def resolve(alert: Alert, user: Any, note: str) -> Alert:
    note = note.strip()
    if not note:
        raise TransitionError("Add a note saying how the alert was resolved.")
    if len(note) > 2000:
        raise TransitionError("The note is too long (at most 2,000 characters).")
    alert = Alert.objects.select_for_update().get(pk=alert.pk)
    if alert.status == Alert.Status.RESOLVED:
        raise TransitionError("This alert is already resolved.")
    if alert.status != Alert.Status.ACKNOWLEDGED:
        raise TransitionError("Acknowledge the alert before resolving it.")
    now = timezone.now()
    alert.status = Alert.Status.RESOLVED
    alert.resolved_at = now
    alert.resolved_by = user
    alert.note = note
    alert.save()
    return alert
