"""Writes of the client's journey. Each runs in one transaction with its audit event."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import Count, Exists, F, IntegerField, Max, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone

from bordin.web.audit import log
from bordin.web.clinic.models import Client, Episode, Goal, GoalRating, Session
from bordin.web.journey.forms import FitCheckForm, IntakeForm
from bordin.web.journey.models import FitCheck, GoalRevision, Intake, JourneyLink, RematchRequest
from bordin.web.prepared import NO_PK, PreparedQuery

#: The hesitant-start badge shows until the episode has this many attended sessions.
HESITANT_BADGE_SESSIONS = 3


class LinkUnavailable(Exception):
    """The link cannot take a submission (expired, revoked, used, or the wrong purpose)."""


def record_link_event(
    request: HttpRequest | None, link: JourneyLink, action: str, object_type: str, object_id: object
) -> None:
    """An audit event whose actor is the client's journey link (the client is not a user)."""
    log.record(
        request,
        action,
        user=AnonymousUser(),
        object_type=object_type,
        object_id=object_id,
        client_id=link.client_id,
        clinic_id=link.client.clinic_id,
        detail=f"by the client's {link.purpose} link #{link.pk}",
    )


def _lock(link_pk: int, purpose: str, key: str) -> tuple[JourneyLink, bool]:
    """The locked link; ``True`` when ``key`` already used it (a repeat of the same post)."""
    link = JourneyLink.objects.select_for_update().select_related("client").get(pk=link_pk)
    if link.purpose != purpose:
        raise LinkUnavailable
    if link.used_at is not None:
        if key and key == link.used_key:
            return link, True
        raise LinkUnavailable
    if not link.is_usable():
        raise LinkUnavailable
    return link, False


@transaction.atomic
def submit_intake(link_pk: int, form: IntakeForm, request: HttpRequest | None) -> Intake:
    key = form.cleaned_data["idempotency_key"]
    link, repeat = _lock(link_pk, JourneyLink.Purpose.INTAKE, key)
    if repeat:
        return Intake.objects.get(episode_id=link.episode_id)
    if Intake.objects.filter(episode_id=link.episode_id).exists():
        raise LinkUnavailable  # one intake per episode
    now = timezone.now()
    data = form.cleaned_data
    intake = Intake.objects.create(
        client_id=link.client_id,
        episode_id=link.episode_id,
        link=link,
        problem_areas=list(data["problem_areas"]),
        own_words=data.get("own_words", ""),
        formats=list(data.get("formats") or []),
        times=list(data.get("times") or []),
        language=data.get("language", ""),
        therapist_preferences=data.get("therapist_preferences", ""),
        past_therapy=data["past_therapy"],
        past_what_happened=data.get("past_what_happened", ""),
        past_different=data.get("past_different", ""),
        submitted_at=now,
    )
    _add_goals(link.episode_id, form.goals())
    _use(link, now, key)
    record_link_event(request, link, log.Action.CREATE, "intake", intake.pk)
    return intake


def _use(link: JourneyLink, now: datetime, key: str) -> None:
    """Use up the link; other open links for the same step of the episode are revoked."""
    link.used_at, link.used_key = now, key
    link.save(update_fields=["used_at", "used_key"])
    JourneyLink.objects.filter(
        episode_id=link.episode_id,
        purpose=link.purpose,
        used_at__isnull=True,
        revoked_at__isnull=True,
    ).exclude(pk=link.pk).update(revoked_at=now)


def revoke_link(request: HttpRequest, client: Client, link_pk: int) -> bool:
    """Revoke an open journey link of the client; ``False`` if there is none."""
    with transaction.atomic():
        updated = JourneyLink.objects.filter(
            pk=link_pk, client=client, used_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if updated:
            log.record(
                request,
                log.Action.UPDATE,
                object_type="journey_link",
                object_id=link_pk,
                client_id=client.pk,
                detail="revoked",
            )
    return bool(updated)


def _add_goals(episode_id: int, texts: Iterable[str]) -> list[Goal]:
    start = (Goal.objects.filter(episode_id=episode_id).aggregate(m=Max("position"))["m"] or -1) + 1
    return [
        Goal.objects.create(episode_id=episode_id, text=text, position=start + k)
        for k, text in enumerate(texts)
    ]


@transaction.atomic
def submit_fit_check(link_pk: int, form: FitCheckForm, request: HttpRequest | None) -> FitCheck:
    key = form.cleaned_data["idempotency_key"]
    link, repeat = _lock(link_pk, JourneyLink.Purpose.FIT_CHECK, key)
    if repeat:
        return FitCheck.objects.get(link_id=link.pk)
    if FitCheck.objects.filter(episode_id=link.episode_id).exists():
        raise LinkUnavailable  # one fit check per episode
    now = timezone.now()
    data = form.cleaned_data
    fit = FitCheck.objects.create(
        client_id=link.client_id,
        episode_id=link.episode_id,
        link=link,
        heard=data["heard"],
        warmth=data["warmth"],
        honest=data["honest"],
        choice=data["choice"],
        share_with_therapist=bool(data.get("share_with_therapist")),
        submitted_at=now,
    )
    _use(link, now, key)
    record_link_event(request, link, log.Action.CREATE, "fit_check", fit.pk)
    if fit.choice == FitCheck.Choice.SWITCH:
        rematch = RematchRequest.objects.create(
            clinic_id=link.client.clinic_id,
            client_id=link.client_id,
            episode_id=link.episode_id,
            fit_check=fit,
            created_at=now,
        )
        record_link_event(request, link, log.Action.CREATE, "rematch_request", rematch.pk)
    return fit


@transaction.atomic
def assign_rematch(request: HttpRequest, rematch_pk: int, therapist: Any) -> Client:
    """A new client record and episode with ``therapist``; intake and goals carried over.

    The first therapist keeps their own (now closed, inactive) record and never sees the new
    one: scoping goes by ``Client.therapist``.
    """
    rematch = RematchRequest.objects.select_for_update().select_related("client").get(pk=rematch_pk)
    if rematch.status != RematchRequest.Status.OPEN:
        raise LinkUnavailable
    old = rematch.client
    today = timezone.localdate()
    new_client = Client.objects.create(
        clinic_id=old.clinic_id, therapist=therapist, display_name=old.display_name
    )
    episode = Episode.objects.create(client=new_client, start=today)
    intake = Intake.objects.filter(episode_id=rematch.episode_id).first()
    if intake is not None:
        Intake.objects.create(
            client=new_client,
            episode=episode,
            carried_from=intake,
            problem_areas=intake.problem_areas,
            own_words=intake.own_words,
            formats=intake.formats,
            times=intake.times,
            language=intake.language,
            therapist_preferences=intake.therapist_preferences,
            past_therapy=intake.past_therapy,
            past_what_happened=intake.past_what_happened,
            past_different=intake.past_different,
            submitted_at=intake.submitted_at,
        )
    old_goals = Goal.objects.filter(episode_id=rematch.episode_id, active=True)
    _add_goals(episode.pk, [g.text for g in old_goals])
    old_episode = Episode.objects.get(pk=rematch.episode_id)
    old_episode.status = Episode.Status.CLOSED
    old_episode.end = max(today, old_episode.start)
    old_episode.save(update_fields=["status", "end"])
    old.active = False
    old.save(update_fields=["active"])
    rematch.status = RematchRequest.Status.ASSIGNED
    rematch.assigned_at = timezone.now()
    rematch.assigned_by_id = request.user.pk
    rematch.new_therapist = therapist
    rematch.new_client = new_client
    rematch.save()
    log.record(
        request,
        log.Action.UPDATE,
        object_type="rematch_request",
        object_id=rematch.pk,
        client_id=old.pk,
        detail="assigned a second therapist; first episode closed",
    )
    log.record(
        request,
        log.Action.CREATE,
        object_type="client",
        object_id=new_client.pk,
        client_id=new_client.pk,
        detail=f"re-match of client {old.pk}; intake carried over",
    )
    return new_client


def current_episode(client: Client) -> Episode | None:
    return client.episodes.order_by("-start", "-pk").first()


@transaction.atomic
def add_goal(request: HttpRequest, client: Client, text: str) -> Goal:
    episode = current_episode(client)
    if episode is None:
        episode = Episode.objects.create(client=client, start=timezone.localdate())
    (goal,) = _add_goals(episode.pk, [text])
    log.record(
        request,
        log.Action.CREATE,
        object_type="goal",
        object_id=goal.pk,
        client_id=client.pk,
        detail="goal agreed in session",
    )
    return goal


@transaction.atomic
def revise_goal(request: HttpRequest, client: Client, goal: Goal, text: str) -> Goal:
    """Reword a goal: the old wording stays (inactive) with its ratings."""
    old = Goal.objects.select_for_update().get(pk=goal.pk)
    if not old.active:
        raise LinkUnavailable
    new = Goal.objects.create(episode_id=old.episode_id, text=text, position=old.position)
    old.active = False
    old.save(update_fields=["active"])
    GoalRevision.objects.create(old_goal=old, new_goal=new, revised_by_id=request.user.pk)
    log.record(
        request,
        log.Action.UPDATE,
        object_type="goal",
        object_id=new.pk,
        client_id=client.pk,
        detail=f"goal {old.pk} reworded (version kept)",
    )
    return new


@dataclass(frozen=True)
class GoalHistory:
    goal: Goal
    earlier: list[str]
    ratings: list[int]

    @property
    def first(self) -> int | None:
        return self.ratings[0] if self.ratings else None

    @property
    def last(self) -> int | None:
        return self.ratings[-1] if self.ratings else None


#: The goal queries of a check-in, compiled once per connection (issue 10).
_EPISODE_GOALS = PreparedQuery(
    Goal,
    lambda episode_id: Goal.objects.filter(episode_id=episode_id).annotate(
        revised_id=F("revision_of__old_goal_id")
    ),
    NO_PK,
)
_ACTIVE_GOALS = PreparedQuery(
    Goal, lambda episode_id: Goal.objects.filter(episode_id=episode_id, active=True), NO_PK
)


#: The ratings of every goal of an episode, in session order: ``(goal id, rating)``.
_EPISODE_RATINGS = PreparedQuery(
    GoalRating,
    lambda episode_id: (
        GoalRating.objects.filter(goal__episode_id=episode_id)
        .order_by("session__number", "pk")
        .values_list("goal_id", "rating")
    ),
    NO_PK,
)


def episode_goals(episode: Episode) -> list[Goal]:
    """Every goal of the episode (active or reworded), each with the id of the goal it revised
    as ``revised_id`` (GoalRevision.new_goal is one-to-one): one query."""
    return _EPISODE_GOALS.all(episode.pk)


def active_goals(episode: Episode) -> list[Goal]:
    """The episode's active goals, in order (``episode.goals.filter(active=True)``): one
    query."""
    return _ACTIVE_GOALS.all(episode.pk)


def goal_histories(episode: Episode, goals: list[Goal] | None = None) -> list[GoalHistory]:
    """Active goals with their earlier wordings (oldest first) and ratings across versions.

    ``goals``: :func:`episode_goals` when the caller has read them already.
    """
    all_goals = goals if goals is not None else episode_goals(episode)
    revised = {g.pk: getattr(g, "revised_id", None) for g in all_goals}
    previous = {pk: old for pk, old in revised.items() if old is not None}
    by_pk = {g.pk: g for g in all_goals}
    # ending.latest_goal_ratings of all the episode's goals, by the episode: one query whose
    # SQL does not depend on how many goals there are, so it is compiled once (issue 10).
    ratings: dict[int, list[int]] = {}
    for goal_id, rating in _EPISODE_RATINGS.tuples(episode.pk):
        ratings.setdefault(goal_id, []).append(rating)
    out = []
    for g in (g for g in all_goals if g.active):
        chain: list[Goal] = []
        pk = previous.get(g.pk)
        while pk is not None and pk in by_pk and len(chain) < 50:
            chain.append(by_pk[pk])
            pk = previous.get(pk)
        chain.reverse()
        values = [r for old in chain for r in ratings.get(old.pk, [])] + ratings.get(g.pk, [])
        out.append(GoalHistory(g, [c.text for c in chain], values))
    return out


def hesitant_start_ids(client_ids: list[int]) -> set[int]:
    """Clients whose current intake reports an unhelpful or harmful earlier therapy and who have
    had fewer than :data:`HESITANT_BADGE_SESSIONS` attended sessions in that episode."""
    rows = (
        Intake.objects.filter(
            client_id__in=client_ids,
            past_therapy=Intake.PastTherapy.UNHELPFUL,
            episode__status=Episode.Status.OPEN,
        )
        .annotate(
            attended=Count(
                "episode__sessions",
                filter=Q(episode__sessions__attendance=Session.Attendance.ATTENDED),
            )
        )
        .filter(attended__lt=HESITANT_BADGE_SESSIONS)
        .values_list("client_id", flat=True)
    )
    return set(rows)


def hesitant_start_exists() -> Exists:
    """:func:`hesitant_start_ids` as an ``Exists`` over ``OuterRef("pk")`` of a client query."""
    attended = (
        Session.objects.filter(episode=OuterRef("episode"), attendance=Session.Attendance.ATTENDED)
        .order_by()
        .values("episode")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Exists(
        Intake.objects.filter(
            client=OuterRef("pk"),
            past_therapy=Intake.PastTherapy.UNHELPFUL,
            episode__status=Episode.Status.OPEN,
        )
        .annotate(n=Coalesce(Subquery(attended), Value(0), output_field=IntegerField()))
        .filter(n__lt=HESITANT_BADGE_SESSIONS)
    )


def first_attended_session(episode: Episode) -> Session | None:
    return (
        episode.sessions.filter(attendance=Session.Attendance.ATTENDED).order_by("number").first()
    )


def today() -> date:
    return timezone.localdate()
