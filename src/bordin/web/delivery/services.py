"""Measure plans, deliveries, the outbox and the worker's batch (docs/delivery.md).

Every link that is sent is written with its :class:`~.models.OutboxMessage` in one
transaction (:func:`deliver_link`). The worker (:func:`run`) claims due messages, sends them
and marks them sent: a crash between send and mark leaves the claim to expire, and the message
is sent again (at worst once more), never lost. A failed send is retried with exponential
backoff; after ``BORDIN_DELIVERY_MAX_ATTEMPTS`` failures the message is given up and the
client's contact is flagged for the clinic (:class:`~.models.ContactFailure`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from bordin.web import i18n
from bordin.web.audit import log
from bordin.web.checkins.models import CheckinLink, SecureLink
from bordin.web.clinic.models import Client, Clinic, Episode, Session
from bordin.web.delivery import sms
from bordin.web.delivery.models import (
    DEFAULT_CHECKIN_CODES,
    Channel,
    ContactFailure,
    Delivery,
    MeasurePlan,
    OutboxMessage,
    Unsubscribe,
)
from bordin.web.instruments.models import ClinicInstrument
from bordin.web.instruments.services import clinic_checkin_instruments
from bordin.web.journey.models import FitCheck, JourneyLink
from bordin.web.prepared import NO_PK, NO_PK_2, PreparedQuery

logger = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "bordin.delivery.unsubscribe"
#: The body of an RFC 8058 one-click unsubscribe POST (and the header that announces it).
ONE_CLICK = "List-Unsubscribe=One-Click"
#: Days in a follow-up "month" (1, 3 and 6 months after a planned ending).
DAYS_PER_MONTH = 30


# --- the plan ---------------------------------------------------------------------------------


def _quiet_default() -> tuple[time, time]:
    """``BORDIN_QUIET_HOURS`` ("21:00-08:00") as two times."""
    start, _, end = settings.BORDIN_QUIET_HOURS.partition("-")
    return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


def clinic_plan(clinic: Clinic) -> MeasurePlan:
    """The clinic's stored plan, or the default plan (not saved)."""
    return MeasurePlan.objects.filter(clinic=clinic).first() or _default_plan(clinic)


def _default_plan(clinic: Clinic, usable: Sequence[ClinicInstrument] | None = None) -> MeasurePlan:
    """The plan of a clinic that saved none; ``usable``: its
    :func:`~bordin.web.instruments.services.clinic_checkin_instruments` when already read."""
    quiet_start, quiet_end = _quiet_default()
    plan = MeasurePlan(clinic=clinic, quiet_start=quiet_start, quiet_end=quiet_end)
    # The default check-in: Bordin's own, then every imported instrument an admin marked
    # "may be used in this clinic" (docs/delivery.md, "Imported instruments in the plan").
    if usable is None:
        usable = clinic_checkin_instruments(clinic.pk)
    plan.checkin_codes = [*DEFAULT_CHECKIN_CODES, *(e.code for e in usable)]
    return plan


def plan_instrument(clinic_id: int, code: str, may_use: bool) -> None:
    """Keep the clinic's plans in step with an imported instrument's "may be used" box.

    Ticked: the code is added to the end of the clinic plan's check-in codes (a clinic without
    a saved plan already asks it, see :func:`clinic_plan`). Unticked: the code is removed from
    the check-in and follow-up codes of the clinic's plan and of its episodes' overrides.
    """
    if may_use:
        plan = MeasurePlan.objects.select_for_update().filter(clinic_id=clinic_id).first()
        if plan is not None and code not in plan.checkin_codes:
            plan.checkin_codes = [*plan.checkin_codes, code]
            plan.save(update_fields=["checkin_codes"])
        return
    plans = MeasurePlan.objects.select_for_update(of=("self",)).filter(
        Q(clinic_id=clinic_id) | Q(episode__client__clinic_id=clinic_id)
    )
    for plan in plans:
        checkin = [c for c in plan.checkin_codes if c != code]
        followup = [c for c in plan.followup_codes if c != code]
        if (checkin, followup) != (plan.checkin_codes, plan.followup_codes):
            plan.checkin_codes, plan.followup_codes = checkin, followup
            plan.save(update_fields=["checkin_codes", "followup_codes"])


#: The episode's and its clinic's plans, compiled once per connection: every check-in form
#: reads them (issue 10).
_PLANS = PreparedQuery(
    MeasurePlan,
    lambda episode_id, clinic_id: MeasurePlan.objects.filter(
        Q(episode_id=episode_id) | Q(clinic_id=clinic_id)
    ),
    NO_PK,
    NO_PK_2,
)


def plan_for(episode: Episode, usable: Sequence[ClinicInstrument] | None = None) -> MeasurePlan:
    """The episode's override if it has one, else its clinic's plan (both read in one query).

    ``usable``: the clinic's usable imported instruments when the caller already read them
    (the default plan lists them)."""
    stored = {
        "episode" if p.episode_id is not None else "clinic": p
        for p in _PLANS.all(episode.pk, episode.client.clinic_id)
    }
    return (
        stored.get("episode")
        or stored.get("clinic")
        or _default_plan(episode.client.clinic, usable)
    )


def episode_plan(episode: Episode) -> MeasurePlan | None:
    """The episode's own plan (its override of the clinic's), if it has one."""
    return MeasurePlan.objects.filter(episode=episode).first()


def new_episode_plan(episode: Episode) -> MeasurePlan:
    """An unsaved override for ``episode``, a copy of the clinic's plan to start from."""
    clinic = clinic_plan(episode.client.clinic)
    plan = MeasurePlan(episode=episode)
    for f in MeasurePlan._meta.concrete_fields:
        if f.name not in ("id", "clinic", "episode"):
            setattr(plan, f.attname, getattr(clinic, f.attname))
    return plan


def plan_episode(client: Client) -> Episode | None:
    """The episode a client's plan page is about: the open one, else the latest."""
    episodes = client.episodes.order_by("-start", "-pk")
    return episodes.filter(status=Episode.Status.OPEN).first() or episodes.first()


def planned_instrument_codes(
    episode: Episode, kind: str, usable: Sequence[ClinicInstrument] | None = None
) -> list[str]:
    """Instrument codes the plan asks for: ``kind`` ``"checkin"`` (alliance and outcome
    measures after each attended session) or ``"followup"`` (outcome measures only).
    The intake, fit check and graduation summary have forms of their own: ``[]``.
    ``usable`` as for :func:`plan_for`."""
    plan = plan_for(episode, usable)
    if kind == Delivery.Kind.FOLLOWUP:
        return [str(c) for c in plan.followup_codes]
    if kind == Delivery.Kind.CHECKIN:
        return [str(c) for c in plan.checkin_codes]
    return []


def kind_for_session(session: Session) -> str:
    """``"followup"`` for a follow-up session made by the worker, else ``"checkin"``."""
    followup = Delivery.objects.filter(session=session, kind=Delivery.Kind.FOLLOWUP).exists()
    return Delivery.Kind.FOLLOWUP if followup else Delivery.Kind.CHECKIN


def is_followup(session: str = "session") -> Exists:
    """:func:`kind_for_session` as an annotation: whether the row's ``session`` (a field
    path of the outer query) is a follow-up session, read with that row."""
    return Exists(Delivery.objects.filter(session=OuterRef(session), kind=Delivery.Kind.FOLLOWUP))


def reminder_delay(clinic: Clinic) -> timedelta:
    hours = clinic_plan(clinic).reminder_hours
    return timedelta(hours=hours if hours is not None else settings.BORDIN_REMINDER_HOURS)


def client_tz(client: Client) -> ZoneInfo:
    """The client's time zone when set, else their clinic's (docs/delivery.md)."""
    return i18n.client_zone(client) or ZoneInfo(client.clinic.time_zone)


def in_quiet_hours(
    clinic: Clinic, now: datetime, plan: MeasurePlan | None = None, *, zone: ZoneInfo | None = None
) -> bool:
    """Whether ``now`` falls in the clinic's quiet hours, read in ``zone`` (the client's time
    zone, :func:`client_tz`) or else the clinic's own."""
    plan = plan or clinic_plan(clinic)
    local = now.astimezone(zone or ZoneInfo(clinic.time_zone)).time()
    start, end = plan.quiet_start, plan.quiet_end
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # spans midnight


def quiet_hours_end(clinic: Clinic, now: datetime, *, zone: ZoneInfo | None = None) -> datetime:
    """The first moment after ``now`` outside the clinic's quiet hours (in ``zone``)."""
    plan = clinic_plan(clinic)
    tz = zone or ZoneInfo(clinic.time_zone)
    local = now.astimezone(tz)
    end = datetime.combine(local.date(), plan.quiet_end, tzinfo=tz)
    if end <= local:
        end += timedelta(days=1)
    return end


# --- essential and non-essential messages ------------------------------------------------------

#: Whether the invitation of each kind of delivery is *essential*: sent even to a client who
#: unsubscribed from its channel (docs/delivery.md, "Essential and non-essential messages").
#: Answering a questionnaire is voluntary, and every message Bordin sends today invites the
#: client to one, so none is essential: an unsubscribe stops them all. A new kind must be
#: added here (a test checks that every ``Delivery.Kind`` is).
ESSENTIAL: dict[str, bool] = {
    Delivery.Kind.INTAKE: False,
    Delivery.Kind.FIT_CHECK: False,
    Delivery.Kind.CHECKIN: False,
    Delivery.Kind.GRADUATION: False,
    Delivery.Kind.FOLLOWUP: False,
}


def is_essential(kind: str, purpose: str) -> bool:
    """Whether a message for a delivery of ``kind`` still goes after an unsubscribe. A
    reminder never does; an invitation as :data:`ESSENTIAL` says (``KeyError``: a kind
    nobody classified)."""
    if purpose == OutboxMessage.Purpose.REMINDER:
        return False
    return ESSENTIAL[kind]


# --- channels and consent ---------------------------------------------------------------------


def unsubscribed(client: Client, channel: str) -> bool:
    return Unsubscribe.objects.filter(client=client, channel=channel).exists()


def channel_for(client: Client, *, essential: bool = False) -> str:
    """Email when the client gave an address and consent, else a text message; ``""`` when
    neither (the link is handed over in the room, e.g. by QR code). An unsubscribe from a
    channel rules it out unless the message is ``essential`` (consent always counts)."""
    for channel in (Channel.EMAIL, Channel.SMS):
        if _consented(client, channel) and (essential or not unsubscribed(client, channel)):
            return channel
    return Channel.IN_PERSON


def channel_for_kind(client: Client, kind: str) -> str:
    """The channel of an invitation for a delivery of ``kind`` (:func:`is_essential`)."""
    return channel_for(client, essential=is_essential(kind, OutboxMessage.Purpose.INVITATION))


def unsubscribe_token(client: Client, channel: str) -> str:
    return signing.dumps([client.pk, channel], salt=UNSUBSCRIBE_SALT, compress=True)


def read_unsubscribe_token(token: str) -> tuple[int, str] | None:
    try:
        pk, channel = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if channel not in (Channel.EMAIL, Channel.SMS) or not isinstance(pk, int):
        return None
    return pk, channel


def unsubscribe_url(client: Client, channel: str) -> str:
    path = reverse("unsubscribe", args=[unsubscribe_token(client, channel)])
    return settings.BORDIN_BASE_URL + path


# --- writing deliveries (inside the transaction that makes the link) --------------------------


def _enqueue_worker() -> None:
    """Wake the worker: a ``deliver`` task, written in the current transaction."""
    from bordin.web.delivery.tasks import deliver

    deliver.enqueue()


def deliver_link(
    kind: str,
    link: SecureLink,
    token: str,
    *,
    session: Session | None = None,
    delivery: Delivery | None = None,
) -> Delivery:
    """Record the link's delivery and, when the client can be reached, its outbox message.

    Call it in the transaction that created ``link``: link, delivery and message are stored
    together or not at all. ``delivery``: a scheduled follow-up being issued.
    """
    client: Client = link.client  # type: ignore[attr-defined]
    now = timezone.now()
    essential = is_essential(kind, OutboxMessage.Purpose.INVITATION)
    channel = channel_for(client, essential=essential)
    d = delivery or Delivery(client=client, episode_id=link.episode_id, kind=kind)  # type: ignore[attr-defined]
    d.session = session
    d.token = token
    d.channel = channel
    d.issued_at = d.due_at = now
    d.reminder_at = now + reminder_delay(client.clinic) if channel else None
    if isinstance(link, CheckinLink):
        d.checkin_link = link
    else:
        assert isinstance(link, JourneyLink)  # noqa: S101 - the two kinds of link
        d.journey_link = link
    d.save()
    if channel:
        OutboxMessage.objects.create(
            delivery=d,
            client=client,
            channel=channel,
            purpose=OutboxMessage.Purpose.INVITATION,
            essential=essential,
        )
        _enqueue_worker()
    return d


def close_open_deliveries(session: Session | None, episode: Episode, kind: str) -> None:
    """Earlier deliveries of the same questionnaire stop being followed up (a resend)."""
    qs = Delivery.objects.filter(episode=episode, kind=kind, closed_at__isnull=True)
    if session is not None:
        qs = qs.filter(session=session)
    qs.update(closed_at=timezone.now(), token=None)


def on_session_recorded(
    session: Session, link: CheckinLink | None, token: str | None, by: Any = None
) -> None:
    """What recording a session sends: its check-in, and the fit check after session 1."""
    episode = session.episode
    plan = plan_for(episode)
    if link is not None and token and plan.send_checkin:
        deliver_link(Delivery.Kind.CHECKIN, link, token, session=session)
    first = (
        session.attendance == Session.Attendance.ATTENDED
        and not episode.sessions.filter(attendance=Session.Attendance.ATTENDED)
        .exclude(pk=session.pk)
        .exists()
    )
    if (
        first
        and plan.send_fit_check
        and not FitCheck.objects.filter(episode=episode).exists()
        and channel_for_kind(episode.client, Delivery.Kind.FIT_CHECK)
    ):
        fit, fit_token = JourneyLink.issue(
            JourneyLink.Purpose.FIT_CHECK, episode, session=session, created_by=by
        )
        deliver_link(Delivery.Kind.FIT_CHECK, fit, fit_token, session=session)


def on_client_added(client: Client, by: Any = None) -> Delivery | None:
    """The intake link for a newly added client who can be reached (email or text)."""
    if not channel_for_kind(client, Delivery.Kind.INTAKE):
        return None  # the therapist hands the intake link over (journey panel)
    with transaction.atomic():
        episode = client.episodes.filter(status=Episode.Status.OPEN).order_by("-start").first()
        if episode is None:
            episode = client.episodes.create(start=timezone.localdate())
        if not plan_for(episode).send_intake:
            return None
        if Delivery.objects.filter(episode=episode, kind=Delivery.Kind.INTAKE).exists():
            return None
        link, token = JourneyLink.issue(JourneyLink.Purpose.INTAKE, episode, created_by=by)
        _record(link.client, "journey_link", link.pk, "intake link issued for delivery")
        return deliver_link(Delivery.Kind.INTAKE, link, token)


def on_planned_ending(episode: Episode, by: Any = None) -> None:
    """At a planned ending: the graduation summary now, follow-ups at 1, 3 and 6 months."""
    if not channel_for_kind(episode.client, Delivery.Kind.GRADUATION):
        return  # nobody to send to: the therapist hands over the summary (journey panel)
    if Delivery.objects.filter(episode=episode, kind=Delivery.Kind.FOLLOWUP).exists():
        return
    plan = plan_for(episode)
    with transaction.atomic():
        if plan.send_graduation:
            link, token = JourneyLink.issue(JourneyLink.Purpose.GRADUATION, episode, created_by=by)
            _record(episode.client, "journey_link", link.pk, "graduation link issued for delivery")
            deliver_link(Delivery.Kind.GRADUATION, link, token)
        ended = episode.end or timezone.localdate()
        tz = client_tz(episode.client)  # follow-ups are due at 10:00 the client's time
        for months in plan.followup_months:
            due = datetime.combine(
                ended + timedelta(days=DAYS_PER_MONTH * int(months)), time(10), tzinfo=tz
            )
            Delivery.objects.create(
                client=episode.client,
                episode=episode,
                kind=Delivery.Kind.FOLLOWUP,
                due_at=due,
                followup_month=int(months),
            )


def resend(delivery: Delivery, by: Any = None) -> Delivery:
    """A fresh link for the same questionnaire, sent again; the old link is revoked."""
    now = timezone.now()
    with transaction.atomic():
        old = delivery.link
        if old is not None and old.used_at is None and old.revoked_at is None:
            old.revoked_at = now
            old.save(update_fields=["revoked_at"])
        close_open_deliveries(delivery.session, delivery.episode, delivery.kind)
        link: SecureLink
        if delivery.checkin_link_id is not None:
            assert delivery.session is not None  # noqa: S101 - check-in links have a session
            link, token = CheckinLink.issue(delivery.session, created_by=by)
        else:
            purpose = delivery.journey_link.purpose if delivery.journey_link else delivery.kind
            link, token = JourneyLink.issue(
                purpose, delivery.episode, session=delivery.session, created_by=by
            )
        fresh = deliver_link(delivery.kind, link, token, session=delivery.session)
        if delivery.followup_month:
            fresh.followup_month = delivery.followup_month
            fresh.save(update_fields=["followup_month"])
        return fresh


def record_unsubscribe(client: Client, channel: str, via: str = "link") -> Unsubscribe:
    """Record the request and cancel the client's pending non-essential messages on it."""
    with transaction.atomic():
        row = Unsubscribe.objects.create(client=client, channel=channel, via=via)
        OutboxMessage.objects.filter(
            client=client, channel=channel, status=OutboxMessage.Status.PENDING, essential=False
        ).update(status=OutboxMessage.Status.CANCELLED, last_error="unsubscribed")
        _record(client, "unsubscribe", row.pk, f"unsubscribed from {channel} by {via}")
    return row


def _record(client: Client, object_type: str, object_id: object, detail: str) -> None:
    """An audit event by the delivery system (no user: the worker or a client's link)."""
    log.record(
        None,
        log.Action.CREATE,
        user=AnonymousUser(),
        object_type=object_type,
        object_id=object_id,
        client_id=client.pk,
        clinic_id=client.clinic_id,
        detail=detail,
    )


# --- the worker's batch -----------------------------------------------------------------------


def run(limit: int = 200, max_batches: int = 50) -> dict[str, int]:
    """One pass of the worker: issue due follow-ups, queue due reminders, then send due
    messages in batches of ``limit`` until none is left (at most ``max_batches``)."""
    now = timezone.now()
    counts = {"followups": issue_due_followups(now), "reminders": queue_reminders(now)}
    forget_tokens(now)
    for _ in range(max_batches):
        batch = send_due(limit=limit)
        for key, n in batch.items():
            counts[key] = counts.get(key, 0) + n
        if sum(batch.values()) < limit:
            break
    return counts


def forget_tokens(now: datetime) -> int:
    """Drop the stored token of every delivery whose link can no longer be used: it was kept
    (encrypted) only for the reminder."""
    closed = Q(closed_at__isnull=False)
    for link in ("checkin_link", "journey_link"):
        closed |= Q(**{f"{link}__used_at__isnull": False})
        closed |= Q(**{f"{link}__revoked_at__isnull": False})
        closed |= Q(**{f"{link}__expires_at__lte": now})
    return Delivery.objects.filter(closed, token__isnull=False).update(token=None)


def issue_due_followups(now: datetime) -> int:
    """Follow-ups whose day has come: a follow-up session on the ended episode, its link."""
    issued = 0
    due = Delivery.objects.filter(
        kind=Delivery.Kind.FOLLOWUP, issued_at__isnull=True, closed_at__isnull=True, due_at__lte=now
    ).select_related("client__clinic", "episode")
    for d in due:
        with transaction.atomic():
            if not channel_for_kind(d.client, d.kind):
                Delivery.objects.filter(pk=d.pk).update(closed_at=now)
                continue
            episode = d.episode
            number = (episode.sessions.aggregate(m=Max("number"))["m"] or 0) + 1
            session = Session.objects.create(
                episode=episode,
                number=number,
                date=now.astimezone(ZoneInfo(d.client.clinic.time_zone)).date(),
                attendance=Session.Attendance.ATTENDED,
            )
            link, token = CheckinLink.issue(session, hours=settings.BORDIN_JOURNEY_LINK_HOURS)
            _record(d.client, "checkin_link", link.pk, f"follow-up at {d.followup_month} months")
            deliver_link(Delivery.Kind.FOLLOWUP, link, token, session=session, delivery=d)
            issued += 1
    return issued


def _still_wanted(d: Delivery, now: datetime) -> str:
    """Why a message for ``d`` should no longer go out, or ``""``."""
    link = d.link
    if d.closed_at is not None:
        return "replaced"
    if link is None:
        return "no link"
    if link.used_at is not None:
        return "completed"
    if link.revoked_at is not None:
        return "revoked"
    if now >= link.expires_at:
        return "expired"
    return ""


def queue_reminders(now: datetime) -> int:
    """One reminder per delivery after the delay, if not completed, outside quiet hours."""
    queued = 0
    due = (
        Delivery.objects.filter(closed_at__isnull=True, reminders_sent=0, reminder_at__lte=now)
        .exclude(channel="")
        .select_related("client__clinic", "checkin_link", "journey_link")
    )
    for d in due:
        reason = _still_wanted(d, now) or ("" if channel_for(d.client) else "opted out")
        if reason:
            Delivery.objects.filter(pk=d.pk).update(reminder_at=None)
            continue
        if in_quiet_hours(d.client.clinic, now, zone=client_tz(d.client)):
            continue  # a later pass sends it, once quiet hours are over
        with transaction.atomic():
            if Delivery.objects.filter(pk=d.pk, reminders_sent=0).update(
                reminders_sent=F("reminders_sent") + 1, reminder_at=None
            ):
                OutboxMessage.objects.create(
                    delivery=d,
                    client=d.client,
                    channel=channel_for(d.client),
                    purpose=OutboxMessage.Purpose.REMINDER,
                )
                queued += 1
    return queued


def send_due(limit: int = 200) -> dict[str, int]:
    """Send due outbox messages (at most ``limit``), one claim, send and mark at a time."""
    now = timezone.now()
    counts = {"sent": 0, "failed": 0, "cancelled": 0, "postponed": 0}
    ids = list(
        OutboxMessage.objects.filter(status=OutboxMessage.Status.PENDING, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return counts
    # One connection for the batch: a backend opened here is not closed after each message.
    connection = get_connection()
    try:
        for pk in ids:
            # An unreachable email server is not the client's fault: their messages stay due
            # for the next pass, not counted as failures (text messages still go).
            outcome = send_one(pk, connection if _open(connection) else None)
            if outcome in counts:
                counts[outcome] += 1
            if outcome == "failed":
                connection.close()  # a refused message can leave the session unusable
    finally:
        connection.close()
    return counts


def _open(connection: Any) -> bool:
    try:
        connection.open()
    except OSError as exc:
        logger.warning("cannot reach the email server: %s", exc)
        return False
    return True


def send_one(pk: int, connection: Any) -> str:
    """Claim, send and mark one message: ``sent``, ``failed``, ``cancelled``, ``postponed``
    or ``skipped`` (another worker holds it, it is no longer pending, or it is an email and
    ``connection`` is ``None``: the email server cannot be reached)."""
    now = timezone.now()
    claim = now + timedelta(seconds=settings.BORDIN_DELIVERY_CLAIM_SECONDS)
    claimed = (
        OutboxMessage.objects.filter(pk=pk, status=OutboxMessage.Status.PENDING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=claim)
    )
    if not claimed:
        return "skipped"
    msg = OutboxMessage.objects.select_related(
        "delivery__client__clinic",
        "delivery__checkin_link",
        "delivery__journey_link",
        "delivery__episode",
    ).get(pk=pk)
    d = msg.delivery
    client = d.client
    reason = _still_wanted(d, now)
    # The policy as it stands now, not only as it was when the message was written.
    essential = msg.essential and is_essential(d.kind, msg.purpose)
    if not reason and not essential and unsubscribed(client, msg.channel):
        reason = "unsubscribed"
    if not reason and not _consented(client, msg.channel):
        reason = "no consent"
    if reason:
        OutboxMessage.objects.filter(pk=pk).update(
            status=OutboxMessage.Status.CANCELLED, last_error=reason, claimed_until=None
        )
        return "cancelled"
    if msg.channel == Channel.EMAIL and connection is None:
        OutboxMessage.objects.filter(pk=pk).update(claimed_until=None)
        return "skipped"
    zone = client_tz(client)
    if msg.purpose == OutboxMessage.Purpose.REMINDER and in_quiet_hours(
        client.clinic, now, zone=zone
    ):
        OutboxMessage.objects.filter(pk=pk).update(
            next_attempt_at=quiet_hours_end(client.clinic, now, zone=zone), claimed_until=None
        )
        return "postponed"
    try:
        if msg.channel == Channel.EMAIL:
            email_message(msg, connection).send()
        else:
            sms.backend().send(client.contact_mobile, sms_text(msg))
    except Exception as exc:  # any failure of the channel is retried, then flagged
        _failed(msg, exc, now)
        return "failed"
    with transaction.atomic():
        OutboxMessage.objects.filter(pk=pk).update(
            status=OutboxMessage.Status.SENT,
            sent_at=timezone.now(),
            attempts=F("attempts") + 1,
            claimed_until=None,
        )
        ContactFailure.objects.filter(client=client, channel=msg.channel).update(
            failures=0, flagged_at=None
        )
        _record(client, "outbox_message", pk, f"{d.kind} {msg.purpose} sent by {msg.channel}")
    return "sent"


def _consented(client: Client, channel: str) -> bool:
    if channel == Channel.EMAIL:
        return bool(client.consent_email and client.contact_email)
    return bool(client.consent_sms and client.contact_mobile)


def _describe(exc: Exception, client: Client) -> str:
    """The error without the client's address (it is encrypted at rest; errors are not)."""
    text = f"{type(exc).__name__}: {exc}"
    for secret in (client.contact_email, client.contact_mobile):
        if secret:
            text = text.replace(secret, "<address>")
    return text[:300]


def _failed(msg: OutboxMessage, exc: Exception, now: datetime) -> None:
    attempts = msg.attempts + 1
    error = _describe(exc, msg.delivery.client)
    logger.warning("sending outbox message %s failed (attempt %s): %s", msg.pk, attempts, error)
    gave_up = attempts >= settings.BORDIN_DELIVERY_MAX_ATTEMPTS
    backoff = timedelta(seconds=settings.BORDIN_DELIVERY_RETRY_SECONDS * 2 ** (attempts - 1))
    with transaction.atomic():
        OutboxMessage.objects.filter(pk=msg.pk).update(
            attempts=attempts,
            last_error=error,
            claimed_until=None,
            next_attempt_at=now + backoff,
            status=OutboxMessage.Status.FAILED if gave_up else OutboxMessage.Status.PENDING,
        )
        failure, _ = ContactFailure.objects.get_or_create(client=msg.client, channel=msg.channel)
        failure.failures += 1
        failure.last_error = error
        if failure.failures >= settings.BORDIN_DELIVERY_MAX_ATTEMPTS and failure.flagged_at is None:
            failure.flagged_at = now
        failure.save()


# --- what a message says (the clinic and the kind of questionnaire, nothing clinical) ---------


def message_context(msg: OutboxMessage) -> dict[str, Any]:
    """What the templates need; render it inside :func:`bordin.web.i18n.for_client` (the
    client's language and time zone)."""
    d = msg.delivery
    clinic = d.client.clinic
    link = d.link
    followup = d.kind == Delivery.Kind.FOLLOWUP
    return {
        "clinic": clinic.name,
        "kind": str(d.get_kind_display()),
        "url": d.url,
        "expires": timezone.localtime(link.expires_at) if link else None,
        "reminder": msg.purpose == OutboxMessage.Purpose.REMINDER,
        "followup": followup,
        "months": d.followup_month,
        "clinic_contact": clinic_plan(clinic).clinic_contact if followup else "",
        "unsubscribe_url": unsubscribe_url(d.client, msg.channel),
    }


def unsubscribe_headers(msg: OutboxMessage, ctx: dict[str, Any]) -> dict[str, str]:
    """RFC 2369 ``List-Unsubscribe`` and RFC 8058 one-click ``List-Unsubscribe-Post`` on a
    non-essential email: a mail program's "Unsubscribe" button POSTs
    ``List-Unsubscribe=One-Click`` to the link (:func:`bordin.web.delivery.views.unsubscribe`)."""
    if is_essential(msg.delivery.kind, msg.purpose):
        return {}
    return {
        "List-Unsubscribe": f"<{ctx['unsubscribe_url']}>",
        "List-Unsubscribe-Post": ONE_CLICK,
    }


def email_message(msg: OutboxMessage, connection: Any = None) -> EmailMultiAlternatives:
    """The email for ``msg``: subject, text and HTML in the client's language."""
    client = msg.delivery.client
    with i18n.for_client(client):
        ctx = message_context(msg)
        names = {"clinic": ctx["clinic"], "kind": ctx["kind"]}
        if ctx["reminder"]:
            subject = gettext("Reminder: %(clinic)s: your %(kind)s") % names
        else:
            subject = gettext("%(clinic)s: your %(kind)s") % names
        ctx["subject"] = subject
        body = render_to_string("delivery/email.txt", ctx)
        html = render_to_string("delivery/email.html", ctx)
    email = EmailMultiAlternatives(
        subject=subject,
        body=body,
        to=[client.contact_email],
        connection=connection,
        headers={"Auto-Submitted": "auto-generated", **unsubscribe_headers(msg, ctx)},
    )
    email.attach_alternative(html, "text/html")
    return email


def sms_text(msg: OutboxMessage) -> str:
    """One text message in the client's language; the clinic's name is shortened to fit."""
    with i18n.for_client(msg.delivery.client):
        ctx = message_context(msg)
        if ctx["reminder"]:
            wording = gettext("Reminder: %(clinic)s: your %(kind)s: %(url)s")
        else:
            wording = gettext("%(clinic)s: your %(kind)s: %(url)s")
    fields = {"kind": ctx["kind"], "url": ctx["url"]}
    room = sms.MAX_LENGTH - len(wording % {**fields, "clinic": ""})
    clinic = str(ctx["clinic"])[: max(room, 0)]
    return sms.check_text(wording % {**fields, "clinic": clinic})
