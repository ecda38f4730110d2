"""Submitting a check-in: one transaction stores the responses, the goal ratings, uses up the
link and raises the alerts, or stores nothing at all."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from bordin.measures.instruments import Instrument as MeasureDefinition
from bordin.web.alerts import notify
from bordin.web.alerts.models import Alert
from bordin.web.alerts.rules import enqueue_checkin_rules, risk_at_once
from bordin.web.audit import log
from bordin.web.checkins.forms import CheckinForm
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic import analysis
from bordin.web.clinic.models import Episode, GoalRating, Instrument, Response, Session
from bordin.web.delivery.followup import check_relapse
from bordin.web.delivery.models import NOT_AT_FOLLOWUP, Delivery
from bordin.web.delivery.services import (
    is_followup,
    kind_for_session,
    planned_instrument_codes,
)
from bordin.web.instruments.models import ClinicInstrument
from bordin.web.instruments.services import clinic_checkin_instruments, definition_of
from bordin.web.prepared import NO_PK, NO_PK_2, Converted, PreparedQuery, PreparedUpdate


class LinkUnavailable(Exception):
    """The link cannot take a submission (expired, revoked, or used with another key)."""


@dataclass(frozen=True)
class Outcome:
    """What the thank-you page needs to know."""

    risk: bool
    alerts: tuple[Alert, ...] = ()
    #: Someone (therapist, duty contact) was e-mailed about the risk (alerts.notify).
    notified: bool = False


#: Bordin's own check-ins, asked at every check-in.
BUILTIN_CHECKIN = (analysis.ALLIANCE, analysis.WELLBEING)


def _codes(
    episode: Episode | None, session: Session | None, kind: str | None = None
) -> tuple[list[str], dict[str, ClinicInstrument]]:
    if episode is None:
        return list(BUILTIN_CHECKIN), {}
    if kind is None:
        kind = kind_for_session(session) if session is not None else Delivery.Kind.CHECKIN
    # The clinic's imported instruments marked "may be used" and active, read once: the
    # default plan lists them too.
    imported = clinic_checkin_instruments(episode.client.clinic_id)
    planned = planned_instrument_codes(episode, kind, imported)
    usable = {e.code: e for e in imported}
    reg = analysis.registry()
    if kind == Delivery.Kind.FOLLOWUP:
        first: list[str] = []
        planned = [c for c in planned if c not in NOT_AT_FOLLOWUP]
    else:
        first = list(BUILTIN_CHECKIN)
    rest = [c for c in planned if c not in first and (c in usable or c in reg)]
    return list(dict.fromkeys([*first, *rest])), usable


def checkin_instrument_codes(
    episode: Episode | None = None, session: Session | None = None
) -> list[str]:
    """The codes of the instruments a check-in asks, in order: what the measure plan says.

    The one place that decides what a check-in asks (docs/delivery.md). A session check-in asks
    Bordin's own alliance and wellbeing check-ins first, then the plan's other check-in codes;
    a follow-up session (made by the delivery worker) asks the plan's follow-up codes only
    (outcome measures). An imported instrument is asked only while it is in the plan and an
    admin marks it "may be used in this clinic" and active (``/instruments/``); a code that is
    neither that nor a built-in measure is skipped.
    """
    return _codes(episode, session)[0]


def checkin_instruments(
    episode: Episode | None = None, session: Session | None = None, kind: str | None = None
) -> list[MeasureDefinition]:
    """The definitions of :func:`checkin_instrument_codes`, imported ones at their current
    version (a clinic's usable imported instrument takes precedence over a built-in of the
    same code). ``kind``: the session's delivery kind when the caller already knows it
    (:func:`link_with_kind`), else it is read.
    """
    return [d for d, _ in _sourced(episode, session, kind)]


def _sourced(
    episode: Episode | None, session: Session | None, kind: str | None
) -> list[tuple[MeasureDefinition, int]]:
    """:func:`checkin_instruments`, each with its stored row's id if it is the clinic's imported
    one, else 0 (a built-in)."""
    codes, usable = _codes(episode, session, kind)
    reg = analysis.registry()
    return [
        (_imported(usable[c].instrument), usable[c].instrument_id) if c in usable else (reg[c], 0)
        for c in codes
    ]


#: Imported definitions by stored row (id, code and version), parsed once per process. A
#: stored version is frozen (``Instrument``: unique code and version, never rewritten), so an
#: entry cannot go stale; a new version is a new row.
_IMPORTED: dict[tuple[int, str, str], MeasureDefinition] = {}


def _imported(row: Instrument) -> MeasureDefinition:
    found = _IMPORTED.get((row.pk, row.code, row.version))
    if found is None:
        found = definition_of(row)
        if len(_IMPORTED) > 256:
            _IMPORTED.clear()
        _IMPORTED[(row.pk, row.code, row.version)] = found
    return found


INSTRUMENTS_SALT = "bordin.checkins.shown-instruments"


def checkin_instruments_noted(
    link: CheckinLink, kind: str | None
) -> tuple[list[MeasureDefinition], str, str]:
    """:func:`checkin_instruments` for the link, the session's delivery kind (read if
    ``kind`` is ``None``) and the form's signed note of both (:func:`shown_instruments` reads
    it back when the form is submitted)."""
    if kind is None:
        kind = kind_for_session(link.session)
    sourced = _sourced(link.episode, link.session, kind)
    entries = [["i" if pk else "b", d.code, d.version, pk] for d, pk in sourced]
    note = signing.dumps([link.pk, kind, entries], salt=INSTRUMENTS_SALT)
    return [d for d, _ in sourced], kind, note


def shown_instruments(
    link: CheckinLink, note: str, max_age: int
) -> tuple[list[MeasureDefinition], str] | None:
    """The instruments the check-in form showed and the session's delivery kind, from the
    form's signed note: the submission is checked and scored against the very questions (and
    versions) the client answered, without reading the measure plan, the clinic's instruments
    and the session's kind again (issue 10).

    ``None`` when the note is missing, altered, made for another link or older than
    ``max_age`` seconds, or names a version not stored: the caller then reads the plan as the
    form did (:func:`checkin_instruments`). A built-in is taken from the registry at its
    version; an imported one from its stored, frozen version.
    """
    if not note or len(note) > 4000:
        return None
    try:
        link_pk, kind, entries = signing.loads(note, salt=INSTRUMENTS_SALT, max_age=max_age)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if link_pk != link.pk or not isinstance(entries, list) or not entries:
        return None
    if kind not in (Delivery.Kind.CHECKIN, Delivery.Kind.FOLLOWUP):
        return None
    reg = analysis.registry()
    out: list[MeasureDefinition] = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[3], int)):
            return None
        if not all(isinstance(part, str) for part in entry[:3]):
            return None
        source, code, version, pk = entry
        if source == "b" and code in reg and reg[code].version == version:
            out.append(reg[code])
            continue
        if source != "i":
            return None
        found = _IMPORTED.get((pk, code, version))
        if found is None:
            row = Instrument.objects.filter(pk=pk, code=code, version=version).first()
            if row is None:
                return None
            found = _imported(row)
        out.append(found)
    return out, str(kind)


def _link_query(*, kind: bool, journey: bool) -> PreparedQuery[CheckinLink]:
    related = ["client__clinic__journey" if journey else "client__clinic", "episode", "session"]

    def build(link_pk: int) -> QuerySet[CheckinLink]:
        # One row by its key: no ORDER BY to compile (issue 10).
        links = CheckinLink.objects.select_related(*related).filter(pk=link_pk).order_by()
        return (links.annotate(followup=is_followup()) if kind else links)[:1]

    return PreparedQuery(CheckinLink, build, NO_PK)


#: The link queries of the check-in's pages, compiled once per connection (issue 10).
_LINK_QUERIES = {
    (kind, journey): _link_query(kind=kind, journey=journey)
    for kind in (True, False)
    for journey in (True, False)
}


def link_with_kind(
    link_pk: int, *, kind: bool = True, journey: bool = False
) -> tuple[CheckinLink, str | None] | None:
    """The link with its client, clinic, episode and session, all in one query, and its
    session's delivery kind (:func:`~bordin.web.delivery.services.kind_for_session`) when
    ``kind`` (else ``None``: a submission reads it from the form's note,
    :func:`shown_instruments`). ``journey``: the clinic's journey settings too (the thank-you
    page shows the goals if they say so)."""
    link = _LINK_QUERIES[kind, journey].first(link_pk)
    if link is None:
        return None
    if not kind:
        return link, None
    followup = link.followup  # type: ignore[attr-defined]  # the annotation
    return link, Delivery.Kind.FOLLOWUP if followup else Delivery.Kind.CHECKIN


def response_key(key: str, code: str) -> str:
    return f"{key}:{code}"


def completed(link: CheckinLink, key: str) -> Outcome | None:
    """The earlier outcome when ``key`` is the one that used this link, else ``None``."""
    if link.used_at is None or not key or key != link.used_key:
        return None
    risk = Response.objects.filter(
        idempotency_key__startswith=response_key(key, ""), risk_flagged=True
    ).exists()
    alert = (
        Alert.objects.filter(session_id=link.session_id, kind=Alert.Kind.RISK).first()
        if risk
        else None
    )
    return Outcome(risk=risk, notified=alert is not None and notify.was_notified(alert))


def submit(
    link: CheckinLink,
    form: CheckinForm,
    request: HttpRequest | None = None,
    kind: str | None = None,
) -> Outcome:
    """Store a valid check-in; a repeat with the same key returns the first outcome.

    A stored check-in is recorded in the audit log (actor: the link) in the same transaction.
    ``kind``: the session's delivery kind if known (:func:`link_with_kind`); only a follow-up
    is checked for a relapse.
    """
    key = form.cleaned_data["idempotency_key"]
    followup = kind != Delivery.Kind.CHECKIN  # not known: check_relapse reads it
    try:
        outcome = _submit(link, form, key, request, followup)
    except IntegrityError:
        # A concurrent submission with the same key won the race: report its outcome.
        fresh = CheckinLink.objects.get(pk=link.pk)
        earlier = completed(fresh, key)
        if earlier is None:
            raise LinkUnavailable from None
        return earlier
    # Stored and committed: now tell people about a risk, at once.
    risk_alerts = [a for a in outcome.alerts if a.kind == Alert.Kind.RISK]
    if risk_alerts:
        notified = notify.notify_risk(risk_alerts[0], request)
        return dataclasses.replace(outcome, notified=notified)
    return outcome


#: A time no link has (the prepared updates below are compiled with it).
_NO_TIME = datetime(1901, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
_NO_TIME_2 = _NO_TIME + timedelta(microseconds=1)

#: The submission's link used up if it still can be: compiled once per connection (issue 10).
_TAKE = PreparedUpdate(
    CheckinLink,
    lambda pk, now, used_at, key: (
        CheckinLink.objects.filter(
            pk=pk, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
        ),
        {"used_at": used_at, "used_key": key},
    ),
    NO_PK,
    Converted(_NO_TIME, "expires_at"),
    Converted(_NO_TIME_2, "used_at"),
    "prepared-update-no-key",
)
#: The session's other open links revoked.
_REVOKE_OTHERS = PreparedUpdate(
    CheckinLink,
    lambda session_id, pk, now: (
        CheckinLink.objects.filter(
            session_id=session_id, used_at__isnull=True, revoked_at__isnull=True
        ).exclude(pk=pk),
        {"revoked_at": now},
    ),
    NO_PK,
    NO_PK_2,
    Converted(_NO_TIME, "revoked_at"),
)


@transaction.atomic
def _submit(
    link: CheckinLink, form: CheckinForm, key: str, request: HttpRequest | None, followup: bool
) -> Outcome:
    # ``link`` came with its client, clinic, episode and session (link_with_kind). One
    # conditional update uses it up, takes its row lock and checks it is still usable; a
    # concurrent submission waits for the lock, then finds it used (and its key).
    now = timezone.now()
    taken = _TAKE.run(link.pk, now, now, key)
    if not taken:
        fresh = CheckinLink.objects.filter(pk=link.pk).first()
        earlier = completed(fresh, key) if fresh is not None else None
        if earlier is None:
            raise LinkUnavailable
        return earlier
    link.used_at, link.used_key = now, key
    episode = link.episode
    episode.client = link.client
    link.session.episode = episode
    session = link.session

    instruments = Instrument.snapshots(form.instruments)
    stored: dict[str, Response] = {}
    for inst in form.instruments:
        answers, free_text = form.answers(inst)
        if inst.unscored:
            total, risk = None, inst.risk_flags(answers)
        else:
            score = inst.score(answers)
            total, risk = score.total, score.risk_items
        stored[inst.code] = Response(
            session=session,
            instrument=instruments[inst.code],
            respondent=Response.Respondent.CLIENT,
            answers=answers,
            total=total,
            free_text=free_text,
            risk_flagged=bool(risk),
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
    log.record_checkin(
        request,
        link,
        log.Action.CREATE,
        object_type="checkin",
        detail=f"check-in for session {session.number}",
    )
    # Other open links for the same session can no longer be used.
    _REVOKE_OTHERS.run(session.pk, link.pk, now)
    others = [r for code, r in stored.items() if code not in BUILTIN_CHECKIN]
    # A risk is raised now, in this transaction; the other rules (rupture, divergence, not on
    # track) read the whole episode: the worker runs them (alerts.tasks), enqueued here.
    alerts = risk_at_once(session, [stored.get(analysis.WELLBEING), *others])
    enqueue_checkin_rules(session)
    if followup:
        check_relapse(session)  # a follow-up after a planned ending (delivery.followup)
    return Outcome(risk=any(r.risk_flagged for r in stored.values()), alerts=tuple(alerts))
