"""The client's check-in: private link, form, validation, idempotency and alerts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink, hash_token
from bordin.web.clinic.models import GoalRating, Response
from bordin.web.delivery.worker import drain
from tests.web.helpers import checkin_post, record_checkin, record_therapist_rating

pytestmark = pytest.mark.django_db

INVALID_TEXT = "This link isn't valid"


@pytest.fixture
def session(add_session: Any) -> Any:
    return add_session(days_ago=0)


@pytest.fixture
def issued(session: Any, owner: Any) -> tuple[CheckinLink, str]:
    return CheckinLink.issue(session, created_by=owner)


def open_form(client: Any, token: str) -> Any:
    """Follow the link as the client does; returns the form page."""
    first = client.get(f"/c/{token}")
    assert first.status_code == 302
    assert first["Location"] == "/c/"
    return client.get("/c/")


def nothing_stored() -> None:
    assert Response.objects.count() == 0
    assert GoalRating.objects.count() == 0
    assert Alert.objects.count() == 0


# ----------------------------------------------------------------------------------- links


def test_token_is_long_and_only_its_hash_is_stored(issued: tuple[CheckinLink, str]) -> None:
    link, token = issued
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    assert link.token_hash == hash_token(token)
    assert token not in link.token_hash
    assert link.expires_at - link.created_at == timedelta(hours=72)


def test_valid_link_redirects_and_strips_token(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    _, token = issued
    response = client.get(f"/c/{token}")
    assert response.status_code == 302
    assert response["Location"] == "/c/"
    assert token not in response["Location"]
    page = client.get("/c/")
    assert page.status_code == 200
    html = page.content.decode()
    assert token not in html
    assert '<html lang="en"' in html
    assert ">Send</button>" in html
    assert "<script" not in html
    # Wording comes from the instrument definitions, labels and fieldsets are real.
    from bordin.web.clinic import analysis

    for item in analysis.registry()["alliance"].items:
        assert item.text.replace("'", "&#x27;") in html
    assert html.count("<fieldset") == 4 + 5 + len(goals)
    assert 'name="alliance-goals"' in html
    assert 'for="id_alliance-goals_0"' in html
    assert 'name="wellbeing-safety"' in html
    assert f'name="goal-{goals[0].pk}"' in html
    assert "Sleep better" in html


def test_opening_the_form_writes_only_its_audit_row(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    """The link stores the link id and the CSRF secret in one session write; the form page
    itself changes nothing but the audit log (a read of the client's goals)."""
    _, token = issued
    assert client.get(f"/c/{token}").status_code == 302
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/c/").status_code == 200
    writes = [
        q["sql"].split()[0] + " " + q["sql"].split()[2]
        for q in queries.captured_queries
        if q["sql"].split()[0] in ("INSERT", "UPDATE", "DELETE")
    ]
    assert writes == ['INSERT "audit_auditevent"']


def test_a_session_the_browser_already_had_is_not_reused(
    client: Any, issued: tuple[CheckinLink, str], owner: Any
) -> None:
    _, token = issued
    client.force_login(owner)  # e.g. a shared computer with a staff session
    before = client.session.session_key
    assert client.get(f"/c/{token}").status_code == 302
    assert client.session.session_key != before
    assert client.get("/c/").status_code == 200


@pytest.mark.parametrize("case", ["tampered", "expired", "revoked", "used", "unknown"])
def test_unusable_links_all_get_the_same_page(
    client: Any, issued: tuple[CheckinLink, str], case: str
) -> None:
    link, token = issued
    if case == "tampered":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    elif case == "expired":
        link.expires_at = timezone.now() - timedelta(seconds=1)
        link.save()
    elif case == "revoked":
        link.revoked_at = timezone.now()
        link.save()
    elif case == "used":
        link.used_at = timezone.now()
        link.used_key = "x" * 32
        link.save()
    elif case == "unknown":
        token = "nothing-like-a-real-token"  # noqa: S105 - a made-up token, not a secret
    response = client.get(f"/c/{token}")
    assert response.status_code == 404
    html = response.content.decode()
    assert INVALID_TEXT in html
    assert "ask your clinic for a new one" in html
    for word in ("expired", "revoked", "already"):
        assert word not in html.lower()
    assert "bordin_checkin_link" not in client.session
    # Going to the form directly gets the same page.
    assert client.get("/c/").status_code == 404
    nothing_stored()


def test_link_expiring_after_opening_is_refused(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    link, token = issued
    open_form(client, token)
    CheckinLink.objects.filter(pk=link.pk).update(expires_at=timezone.now())
    response = client.post("/c/", checkin_post(goals))
    assert response.status_code == 404
    nothing_stored()


def test_link_lifetime_follows_setting(session: Any, settings: Any) -> None:
    settings.BORDIN_CHECKIN_LINK_HOURS = 24
    link, _ = CheckinLink.issue(session)
    assert link.expires_at - link.created_at == timedelta(hours=24)


# ------------------------------------------------------------------------------ submission


def test_valid_submission_stores_everything(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any], session: Any
) -> None:
    link, token = issued
    open_form(client, token)
    response = client.post("/c/", checkin_post(goals))
    assert response.status_code == 200
    assert b"Thank you" in response.content
    alliance = Response.objects.get(instrument__code="alliance")
    assert alliance.session == session
    assert alliance.respondent == "client"
    assert alliance.total == pytest.approx(8.25)  # mean of 8, 8, 9, 8 by bordin.measures
    assert alliance.answers == {"goals": 8.0, "tasks": 8.0, "bond": 9.0, "overall": 8.0}
    assert alliance.free_text == "Maybe a little more time at the end."
    assert alliance.instrument.version == "1"
    assert alliance.instrument.definition["code"] == "alliance"
    wellbeing = Response.objects.get(instrument__code="wellbeing")
    assert wellbeing.total == pytest.approx(5.5)
    assert not wellbeing.risk_flagged
    assert sorted(GoalRating.objects.values_list("rating", flat=True)) == [6, 6]
    link.refresh_from_db()
    assert link.used_at is not None
    assert Alert.objects.count() == 0
    # The link is now spent.
    client.cookies.clear()
    assert client.get(f"/c/{token}").status_code == 404


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"alliance-bond": "11"}, "Please choose a number from 0 to 10."),
        ({"alliance-bond": "-1"}, "Please choose a number from 0 to 10."),
        ({"alliance-bond": "seven"}, "Please choose a number from 0 to 10."),
        ({"alliance-bond": None}, "Please choose a number from 0 to 10."),
        ({"wellbeing-mood": None}, "Please choose a number from 0 to 10."),
        ({"wellbeing-safety": "3"}, "Please choose one of the answers."),
        ({"alliance-better": "x" * 2001}, "at most 2000 characters"),
    ],
)
def test_invalid_answers_are_refused_and_kept(
    client: Any,
    issued: tuple[CheckinLink, str],
    goals: list[Any],
    override: dict[str, Any],
    message: str,
) -> None:
    _, token = issued
    open_form(client, token)
    data = checkin_post(goals, **{k.replace("-", "__"): v for k, v in override.items()})
    if "alliance-better" not in override:
        data["alliance-better"] = "Things I typed & want kept <3"
    response = client.post("/c/", data)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    assert "Please check your answers" in html
    nothing_stored()
    # Everything typed is still there: free text, chosen radios, goal ratings.
    if "alliance-better" not in override:
        assert "Things I typed &amp; want kept &lt;3</textarea>" in html
    if "alliance-goals" not in override:
        assert 'value="8" id="id_alliance-goals_8" checked' in html
    assert f'value="6" id="id_goal-{goals[0].pk}_6" checked' in html


def test_missing_goal_rating_is_refused(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    _, token = issued
    open_form(client, token)
    data = checkin_post(goals)
    del data[f"goal-{goals[1].pk}"]
    response = client.post("/c/", data)
    assert response.status_code == 400
    assert b"for this goal" in response.content
    nothing_stored()


def test_double_submit_stores_one_response(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    _, token = issued
    open_form(client, token)
    data = checkin_post(goals, key="same-key-" + "a" * 20)
    first = client.post("/c/", data)
    second = client.post("/c/", data)
    assert first.status_code == second.status_code == 200
    assert b"Thank you" in second.content
    assert Response.objects.filter(instrument__code="alliance").count() == 1
    assert Response.objects.filter(instrument__code="wellbeing").count() == 1
    assert GoalRating.objects.count() == 2


def test_resubmission_with_another_key_is_refused(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    _, token = issued
    open_form(client, token)
    assert client.post("/c/", checkin_post(goals, key="a" * 32)).status_code == 200
    response = client.post("/c/", checkin_post(goals, key="b" * 32))
    assert response.status_code == 404
    assert Response.objects.filter(instrument__code="alliance").count() == 1


def test_risk_answer_raises_alert_and_shows_crisis_contacts(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any], session: Any
) -> None:
    _, token = issued
    open_form(client, token)
    response = client.post("/c/", checkin_post(goals, wellbeing__safety="1"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-crisis" in html
    assert "Harbour duty line: 0100 111 222" in html
    alert = Alert.objects.get()
    assert alert.kind == "risk"
    assert alert.status == "new"
    assert alert.session == session
    assert Response.objects.get(instrument__code="wellbeing").risk_flagged


def test_no_crisis_box_without_risk(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    _, token = issued
    open_form(client, token)
    response = client.post("/c/", checkin_post(goals))
    assert b"data-crisis" not in response.content


def test_alerts_are_created_in_the_same_transaction(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    _, token = issued
    open_form(client, token)
    with CaptureQueriesContext(connection) as ctx:
        client.post("/c/", checkin_post(goals, wellbeing__safety="2"))
    sql = [q["sql"] for q in ctx.captured_queries]
    begin = next(i for i, q in enumerate(sql) if "SAVEPOINT" in q or q.startswith("BEGIN"))
    alert_insert = next(i for i, q in enumerate(sql) if 'INSERT INTO "alerts_alert"' in q)
    response_insert = next(i for i, q in enumerate(sql) if 'INSERT INTO "clinic_response"' in q)
    commit = next(
        i for i, q in enumerate(sql) if i > alert_insert and ("RELEASE" in q or q == "COMMIT")
    )
    assert begin < response_insert < alert_insert < commit


def test_failure_inside_the_transaction_stores_nothing(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any], monkeypatch: Any
) -> None:
    _, token = issued
    open_form(client, token)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("alert rules failed")

    monkeypatch.setattr("bordin.web.checkins.services.risk_at_once", boom)
    client.raise_request_exception = False
    response = client.post("/c/", checkin_post(goals, wellbeing__safety="2"))
    assert response.status_code == 500
    nothing_stored()
    assert CheckinLink.objects.get().used_at is None


def test_rupture_alert_is_raised_once(
    client: Any, add_session: Any, goals: list[Any], owner: Any
) -> None:
    first = add_session(days_ago=14)
    record_checkin(first, {"goals": 9, "tasks": 9, "bond": 9, "overall": 9})
    second = add_session(days_ago=0)
    _, token = CheckinLink.issue(second)
    open_form(client, token)
    low = {"alliance__goals": "6", "alliance__tasks": "4", "alliance__bond": "8"}
    low["alliance__overall"] = "6"
    data = checkin_post(goals, key="r" * 32, **low)
    assert client.post("/c/", data).status_code == 200
    assert not Alert.objects.exists()  # the rupture rule runs in the worker (alerts.tasks)
    assert drain() >= 1
    alert = Alert.objects.get()
    assert alert.kind == "rupture"
    assert alert.session == second
    assert "Tasks fell most" in alert.detail
    # Re-running the rules for the same session does not duplicate the alert.
    from bordin.web.alerts.rules import evaluate_checkin

    evaluate_checkin(
        second, Response.objects.get(session=second, instrument__code="alliance"), None
    )
    assert Alert.objects.count() == 1
    assert client.post("/c/", data).status_code == 200
    drain()
    assert Alert.objects.count() == 1


def test_divergence_alert_when_therapist_rated_higher(
    client: Any, session: Any, goals: list[Any], owner: Any
) -> None:
    record_therapist_rating(session, {"goals": 9, "tasks": 9, "bond": 9}, owner)
    _, token = CheckinLink.issue(session)
    open_form(client, token)
    data = checkin_post(goals, alliance__goals="6", alliance__tasks="7", alliance__bond="7")
    assert client.post("/c/", data).status_code == 200
    assert drain() >= 1  # the divergence rule runs in the worker (alerts.tasks)
    alert = Alert.objects.get()
    assert alert.kind == "divergence"
    assert "bond 9.0 on average; the client rated them 6.7." in alert.detail
    # The check-in's rule read the episode's rows; the therapist-rating path queries the
    # session: both decide the same.
    from bordin.web.alerts.rules import check_divergence
    from bordin.web.clinic import analysis

    scores = analysis.episode_data(session.episode, comments=False)
    assert check_divergence(session.episode.client, session, scores) == alert
    assert check_divergence(session.episode.client, session) == alert


def test_dedupe_key_is_unique_in_the_database(client_record: Any, session: Any) -> None:
    from django.db import IntegrityError, transaction

    Alert.objects.create(
        clinic=client_record.clinic, client=client_record, kind="risk", dedupe_key="k1"
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(
            clinic=client_record.clinic, client=client_record, kind="risk", dedupe_key="k1"
        )


def test_broken_idempotency_key_gets_a_fresh_one(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any]
) -> None:
    _, token = issued
    open_form(client, token)
    response = client.post("/c/", checkin_post(goals, key="short"))
    assert response.status_code == 400
    assert b"reload the page" in response.content
    nothing_stored()
    import re

    key = re.search(r'name="idempotency_key" value="([^"]+)"', response.content.decode())
    assert key and len(key.group(1)) >= 16
    assert client.post("/c/", checkin_post(goals, key=key.group(1))).status_code == 200


def test_using_a_link_revokes_other_links_for_the_session(
    client: Any, issued: tuple[CheckinLink, str], goals: list[Any], session: Any
) -> None:
    _, token = issued
    other, other_token = CheckinLink.issue(session)
    open_form(client, token)
    assert client.post("/c/", checkin_post(goals)).status_code == 200
    other.refresh_from_db()
    assert other.revoked_at is not None
    assert type(client)().get(f"/c/{other_token}").status_code == 404
