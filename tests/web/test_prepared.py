"""A prepared query (bordin.web.prepared) returns what its queryset returns, in one query.

It is compiled once per connection and then runs Django's own SQL with new values: the rows,
their related objects (``select_related``), annotations, deferred fields and converted values
must be those the ORM gives, for any value, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import F

from bordin.web.checkins import services
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Goal
from bordin.web.delivery.services import is_followup
from bordin.web.prepared import NO_PK, NO_PK_2, PreparedQuery

pytestmark = pytest.mark.django_db


def _fields(obj: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(obj).items() if k != "_state"}


def _links(link_pk: int) -> Any:
    return (
        CheckinLink.objects.select_related("client__clinic", "episode", "session")
        .filter(pk=link_pk)
        .annotate(followup=is_followup())
        .order_by()[:1]
    )


def test_a_prepared_query_gives_the_orms_rows_related_objects_and_annotations(
    add_session: Any, owner: Any, django_assert_num_queries: Any
) -> None:
    first, _ = CheckinLink.issue(add_session(days_ago=2), created_by=owner)
    second, _ = CheckinLink.issue(add_session(days_ago=1), created_by=owner)
    query = PreparedQuery(CheckinLink, _links, NO_PK)
    for link in (first, second, first):  # compiled on the first call, reused after
        expected = _links(link.pk)[0]
        with django_assert_num_queries(1):
            got = query.first(link.pk)
        assert got is not None and type(got) is CheckinLink
        assert _fields(got) == _fields(expected)
        assert got.followup is False  # type: ignore[attr-defined]
        assert got._state.db == "default" and not got._state.adding
        for name in ("client", "episode", "session"):
            assert CheckinLink._meta.get_field(name).is_cached(got)  # type: ignore[union-attr]
            assert _fields(getattr(got, name)) == _fields(getattr(expected, name))
        assert _fields(got.client.clinic) == _fields(expected.client.clinic)
    assert query.first(second.pk + 1000) is None
    assert query.all(second.pk + 1000) == []


def test_the_link_lookups_match_the_orm(add_session: Any, owner: Any) -> None:
    link, token = CheckinLink.issue(add_session(), created_by=owner)
    found = CheckinLink.find(token)
    assert found is not None and _fields(found) == _fields(CheckinLink.objects.get(pk=link.pk))
    assert found.client.clinic == link.client.clinic and found.session == link.session
    assert CheckinLink.find(token + "x") is None
    for kind in (True, False):
        for journey in (True, False):
            got = services.link_with_kind(link.pk, kind=kind, journey=journey)
            assert got is not None and got[0].pk == link.pk
            assert got[1] == ("checkin" if kind else None)
    assert services.link_with_kind(link.pk + 1000) is None


def test_every_row_in_order_with_deferred_fields_and_two_values(
    episode: Any, goals: list[Any], django_assert_num_queries: Any
) -> None:
    goals = [*goals, Goal.objects.create(episode=episode, text="Walk", position=2, active=False)]
    query = PreparedQuery(
        Goal,
        lambda episode_id, goal_id: (
            Goal.objects.filter(episode_id=episode_id)
            .exclude(pk=goal_id)
            .annotate(number=F("position"))
            .only("text")
        ),
        NO_PK,
        NO_PK_2,
    )
    for left_out in (goals[0], goals[2]):
        with django_assert_num_queries(1):
            got = query.all(episode.pk, left_out.pk)
        assert [g.pk for g in got] == [g.pk for g in goals if g != left_out]
        assert [g.text for g in got] == [g.text for g in goals if g != left_out]
        numbers = [getattr(g, "number") for g in got]  # noqa: B009 - the annotation
        assert numbers == [g.position for g in goals if g != left_out]
        assert got[0].get_deferred_fields() == {"episode_id", "active", "created_at", "position"}
    assert query.all(episode.pk + 1000, goals[0].pk) == []


def test_none_is_left_to_the_orm(episode: Any, goals: list[Any]) -> None:
    # ``= None`` is compiled as IS NULL: not a parameter the prepared SQL could take.
    query = PreparedQuery(
        Goal, lambda episode_id: Goal.objects.filter(episode_id=episode_id), NO_PK
    )
    assert query.all(episode.pk) == goals
    assert query.all(None) == []


def test_a_query_without_its_sentinel_as_a_parameter_runs_through_the_orm(
    episode: Any, goals: list[Any]
) -> None:
    # The value is not a parameter of the SQL here (a slice bound is written into it).
    query = PreparedQuery(Goal, lambda n: Goal.objects.filter(episode=episode)[:n], 2)
    assert query.all(2) == goals[:2]
    assert query.all(1) == goals[:1]
    assert query._compiled and None in query._compiled.values()


def test_values_list_rows_come_back_as_the_orms_tuples(
    episode: Any, goals: list[Any], add_session: Any, django_assert_num_queries: Any
) -> None:
    from bordin.web.clinic.models import GoalRating
    from bordin.web.journey.ending import latest_goal_ratings
    from bordin.web.journey.services import episode_goals, goal_histories

    first, second = add_session(days_ago=3), add_session(days_ago=2)
    # Stored out of session order: the rows come in session order, as the ORM gives them.
    for session, rating in ((second, 7), (first, 3)):
        for goal in goals:
            GoalRating.objects.create(session=session, goal=goal, rating=rating + goal.position)

    def build(episode_id: int) -> Any:
        return (
            GoalRating.objects.filter(goal__episode_id=episode_id)
            .order_by("session__number", "pk")
            .values_list("goal_id", "rating")
        )

    query = PreparedQuery(GoalRating, build, NO_PK)
    for _ in range(2):
        with django_assert_num_queries(1):
            rows = query.tuples(episode.pk)
        assert rows == list(build(episode.pk))
        assert rows[0] == (goals[0].pk, 3)
    with pytest.raises(TypeError):
        query.all(episode.pk)
    # The thank-you page's goals: the ratings read by the episode are those of its goals.
    histories = goal_histories(episode, episode_goals(episode))
    expected = latest_goal_ratings(goals)
    assert [h.ratings for h in histories] == [expected[g.pk] for g in goals]


def test_the_session_store_reads_a_live_session_and_drops_an_expired_or_unknown_key(
    django_assert_num_queries: Any,
) -> None:
    from datetime import timedelta

    from django.conf import settings
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from bordin.web.session_store import SessionStore

    assert settings.SESSION_ENGINE == "bordin.web.session_store"
    store = SessionStore()
    store["x"] = 1
    store.create()
    key = store.session_key
    for _ in range(2):
        with django_assert_num_queries(1):
            again = SessionStore(key)
            assert again["x"] == 1 and again.session_key == key
    with django_assert_num_queries(2):
        assert store.exists(key) and not store.exists("nosuchkey" * 3)
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(1))
    assert store.exists(key)  # an expired row still holds its key
    expired = SessionStore(key)
    assert expired.get("x") is None and expired.session_key is None
    unknown = SessionStore("nosuchkey" * 3)
    assert unknown.get("x") is None and unknown.session_key is None


def test_the_check_in_updates_are_prepared_and_keep_the_links_single_use(
    add_session: Any, owner: Any, django_assert_num_queries: Any
) -> None:
    from datetime import timedelta

    from django.db import connections
    from django.utils import timezone

    connection = connections["default"]
    session = add_session()
    link, _ = CheckinLink.issue(session, created_by=owner)
    other, _ = CheckinLink.issue(session, created_by=owner)
    expired, _ = CheckinLink.issue(add_session(), created_by=owner, hours=0)
    now = timezone.now()
    with django_assert_num_queries(1):
        assert services._TAKE.run(link.pk, now, now, "key-1") == 1
    assert services._TAKE.run(link.pk, now, now, "key-2") == 0  # used: single use
    assert services._TAKE.run(expired.pk, now, now, "key-3") == 0  # expired
    link.refresh_from_db()
    assert (link.used_at, link.used_key) == (now, "key-1")
    later = now + timedelta(seconds=1)
    assert services._REVOKE_OTHERS.run(session.pk, link.pk, later) == 1
    other.refresh_from_db()
    link.refresh_from_db()
    assert other.revoked_at == later and link.revoked_at is None
    assert services._TAKE.run(other.pk, later, later, "key-4") == 0  # revoked
    # Prepared on this database (not left to the ORM).
    assert services._TAKE._compiled[connection] is not None
    assert services._REVOKE_OTHERS._compiled[connection] is not None
    assert services.link_with_kind(link.pk) is not None
    assert services._LINK_QUERIES[True, False]._compiled[connection] is not None
