"""Submitting a check-in: one transaction stores the responses, the goal ratings, uses up the
link and raises the alerts, or stores nothing at all."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from bordin.measures.instruments import Instrument as MeasureDefinition
from bordin.web.alerts.models import Alert
from bordin.web.alerts.rules import evaluate_checkin
from bordin.web.audit import log
from bordin.web.checkins.forms import CheckinForm
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic import analysis
from bordin.web.clinic.models import GoalRating, Instrument, Response
from bordin.web.delivery.followup import check_relapse


class LinkUnavailable(Exception):
    """The link cannot take a submission (expired, revoked, or used with another key)."""


@dataclass(frozen=True)
class Outcome:
    """What the thank-you page needs to know."""

    risk: bool
    alerts: tuple[Alert, ...] = ()


def checkin_instruments() -> list[MeasureDefinition]:
    reg = analysis.registry()
    return [reg[analysis.ALLIANCE], reg[analysis.WELLBEING]]


def response_key(key: str, code: str) -> str:
    return f"{key}:{code}"


def completed(link: CheckinLink, key: str) -> Outcome | None:
    """The earlier outcome when ``key`` is the one that used this link, else ``None``."""
    if link.used_at is None or not key or key != link.used_key:
        return None
    wellbeing = Response.objects.filter(
        idempotency_key=response_key(key, analysis.WELLBEING)
    ).first()
    return Outcome(risk=bool(wellbeing and wellbeing.risk_flagged))


def submit(link: CheckinLink, form: CheckinForm, request: HttpRequest | None = None) -> Outcome:
    """Store a valid check-in; a repeat with the same key returns the first outcome.

    A stored check-in is recorded in the audit log (actor: the link) in the same transaction.
    """
    key = form.cleaned_data["idempotency_key"]
    # Refit an expired trajectory model before the transaction, not while holding its locks.
    analysis.warm_reference_models(link.client.clinic)
    try:
        return _submit(link.pk, form, key, request)
    except IntegrityError:
        # A concurrent submission with the same key won the race: report its outcome.
        fresh = CheckinLink.objects.get(pk=link.pk)
        earlier = completed(fresh, key)
        if earlier is None:
            raise LinkUnavailable from None
        return earlier


@transaction.atomic
def _submit(link_pk: int, form: CheckinForm, key: str, request: HttpRequest | None) -> Outcome:
    link = (
        CheckinLink.objects.select_for_update(of=("self",))
        .select_related("session__episode__client__clinic")
        .get(pk=link_pk)
    )
    now = timezone.now()
    if link.used_at is not None:
        earlier = completed(link, key)
        if earlier is None:
            raise LinkUnavailable
        return earlier
    if not link.is_usable(now):
        raise LinkUnavailable
    session = link.session

    instruments = Instrument.snapshots(form.instruments)
    stored: dict[str, Response] = {}
    for inst in form.instruments:
        answers, free_text = form.answers(inst)
        score = inst.score(answers)
        stored[inst.code] = Response(
            session=session,
            instrument=instruments[inst.code],
            respondent=Response.Respondent.CLIENT,
            answers=answers,
            total=score.total,
            free_text=free_text,
            risk_flagged=bool(score.risk_items),
            submitted_at=now,
            idempotency_key=response_key(key, inst.code),
        )
    Response.objects.bulk_create(stored.values())  # sets their primary keys (RETURNING)
    ratings = form.goal_ratings()
    if ratings:
        GoalRating.objects.bulk_create(
            GoalRating(
                session=session,
                response=stored.get(analysis.ALLIANCE),
                goal_id=goal_id,
                rating=value,
            )
            for goal_id, value in ratings.items()
        )
    link.used_at = now
    link.used_key = key
    link.save(update_fields=["used_at", "used_key"])
    link.client = session.episode.client
    log.record_checkin(
        request,
        link,
        log.Action.CREATE,
        object_type="checkin",
        detail=f"check-in for session {session.number}",
    )
    # Other open links for the same session can no longer be used.
    CheckinLink.objects.filter(
        session=session, used_at__isnull=True, revoked_at__isnull=True
    ).exclude(pk=link.pk).update(revoked_at=now)
    alerts = evaluate_checkin(
        session, stored.get(analysis.ALLIANCE), stored.get(analysis.WELLBEING)
    )
    check_relapse(session)  # a follow-up after a planned ending (delivery.followup)
    wellbeing = stored.get(analysis.WELLBEING)
    return Outcome(risk=bool(wellbeing and wellbeing.risk_flagged), alerts=tuple(alerts))
