"""Shared goals (revisable, history kept) and ending with evidence: suggestion, summary, PDFs."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Goal, GoalRating
from bordin.web.journey import ending
from bordin.web.journey.models import GoalRevision, JourneyLink
from tests.web.helpers import record_checkin
from tests.web.journey_helpers import journey_fingerprint, open_link

pytestmark = pytest.mark.django_db

ALLIANCE_OK = {"goals": 8, "tasks": 8, "bond": 9, "overall": 8}


def _wellbeing(level: float) -> dict[str, float]:
    return {"mood": level, "daily": level, "connection": level, "coping": level, "safety": 0}


def build_course(
    add_session: Any,
    goals: list[Any],
    wellbeing: list[float],
    goal_ratings: list[int],
    alliance: list[float] | None = None,
) -> list[Any]:
    sessions = []
    n = len(wellbeing)
    for k, level in enumerate(wellbeing):
        s = add_session(days_ago=7 * (n - k))
        a = alliance[k] if alliance else None
        record_checkin(
            s,
            {"goals": a, "tasks": a, "bond": a, "overall": a} if a else ALLIANCE_OK,
            _wellbeing(level),
        )
        for g in goals:
            GoalRating.objects.create(session=s, goal=g, rating=goal_ratings[k])
        sessions.append(s)
    return sessions


@pytest.fixture
def ready(add_session: Any, goals: list[Any], episode: Any) -> Any:
    """Wellbeing 3 -> 7 held over the last two sessions; goals at 8; alliance steady."""
    build_course(add_session, goals, [3, 4, 5, 6, 7], [2, 3, 5, 8, 8])
    return episode


def test_ready_client_gets_the_ending_suggestion(
    client: Any, login: Any, owner: Any, client_record: Any, ready: Any
) -> None:
    ev = ending.evidence(ready)
    assert ev.outcome_ok and ev.goals_ok and ev.alliance_ok and ev.ready
    login(owner)
    page = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "Consider planning the ending" in page
    assert 'data-action="graduation-pdf"' in page
    assert "Held reliable improvement over the last 2 scores" in page
    assert "2 of 2 rated 7 or more" in page


@pytest.mark.parametrize(
    ("wellbeing", "ratings", "alliance", "missing"),
    [
        # Improvement only at the very last score: not held over two.
        ([3, 3, 4, 4, 6], [2, 3, 5, 8, 8], None, "outcome"),
        # Outcome fine, goals not met.
        ([3, 4, 5, 6, 7], [2, 3, 5, 6, 6], None, "goals"),
        # An open rupture at the last session.
        ([3, 4, 5, 6, 7], [2, 3, 5, 8, 8], [8, 8, 8, 8, 6], "alliance"),
    ],
)
def test_no_suggestion_without_all_evidence(
    client: Any,
    login: Any,
    owner: Any,
    client_record: Any,
    add_session: Any,
    goals: list[Any],
    episode: Any,
    wellbeing: list[float],
    ratings: list[int],
    alliance: list[float] | None,
    missing: str,
) -> None:
    build_course(add_session, goals, wellbeing, ratings, alliance)
    ev = ending.evidence(episode)
    assert not ev.ready
    assert not getattr(ev, f"{missing}_ok")
    login(owner)
    page = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "Consider planning the ending" not in page


def test_phq9_needs_recovery_when_starting_as_a_case() -> None:
    from bordin.web.clinic.analysis import EpisodeData

    data = EpisodeData(client={"phq9": {1: 20, 2: 16, 3: 13, 4: 12}}, n_sessions=4)
    ev = ending.Evidence()
    ending._outcome(ev, data)  # reliably improved (>= 6 points), still a case (>= 10)
    assert not ev.outcome_ok and "No held recovery yet" in ev.items[0]
    data = EpisodeData(client={"phq9": {1: 20, 2: 12, 3: 8, 4: 7}}, n_sessions=4)
    ev = ending.Evidence()
    ending._outcome(ev, data)
    assert ev.outcome_ok


def test_plain_language_change() -> None:
    change = ending.Change("phq9", "PHQ-9", 18, 8, 6, True, "recovered", 10)
    text = change.plain()
    assert "fell by 10 points, from 18 to 8" in text
    assert "a change of at least 6 points is bigger than those day-to-day ups and downs" in text


def _pdf_pages(tmp_path: Path, pdf: bytes) -> list[Path]:
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", str(path), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    return sorted(tmp_path.glob("page*.png"))


def test_graduation_pdf_and_progress_report(
    client: Any, login: Any, owner: Any, client_record: Any, ready: Any, tmp_path: Path
) -> None:
    login(owner)
    for url, kind in (
        (f"/clients/{client_record.pk}/journey/graduation.pdf", "graduation_pdf"),
        (f"/clients/{client_record.pk}/journey/report.pdf", "progress_report"),
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/pdf"
        assert response["Content-Disposition"].startswith("attachment;")
        assert "no-store" in response["Cache-Control"]
        assert response.content.startswith(b"%PDF")
        assert (
            _pdf_pages(tmp_path / kind, response.content)
            if (tmp_path / kind).mkdir() is None
            else False
        )
        assert AuditEvent.objects.filter(object_type=kind, action="export").count() == 1
    summary = client.get(f"/clients/{client_record.pk}/journey/graduation/").content.decode()
    assert (
        "Your wellbeing check-in score rose by 4 points" in summary or "rose by 4 points" in summary
    )
    assert "You are welcome back" in summary
    assert "Sleep better" in summary


def test_graduation_link_for_the_client(
    client: Any, login: Any, owner: Any, client_record: Any, ready: Any
) -> None:
    from django.test import Client as Browser

    login(owner)
    response = client.post(f"/clients/{client_record.pk}/journey/graduation-link/", follow=True)
    assert response.status_code == 200
    browser = Browser()
    link, token = open_link(browser, "graduation", ready)
    page = browser.get("/j/")
    assert page.status_code == 200 and "You are welcome back" in page.content.decode()
    pdf = browser.get("/j/summary.pdf")
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert browser.post("/j/", {}).status_code == 404
    # The token works once; another browser gets nothing.
    assert Browser().get(f"/j/{token}").status_code == 404
    assert Browser().get("/j/summary.pdf").status_code == 404
    assert AuditEvent.objects.filter(object_type="graduation_summary", action="read").exists()
    # Revoked: the session loses the page.
    JourneyLink.objects.filter(pk=link.pk).update(revoked_at=link.created_at)
    assert browser.get("/j/").status_code == 404


def test_goal_revision_keeps_history_and_ties_ratings(
    client: Any, login: Any, owner: Any, client_record: Any, goals: list[Any], add_session: Any
) -> None:
    s1 = add_session(days_ago=7)
    GoalRating.objects.create(session=s1, goal=goals[0], rating=3)
    login(owner)
    url = f"/clients/{client_record.pk}/journey/goals/{goals[0].pk}/"
    assert client.post(url, {"text": "Sleep six hours most nights"}).status_code == 302
    old = Goal.objects.get(pk=goals[0].pk)
    new = Goal.objects.get(active=True, position=goals[0].position)
    assert new.text == "Sleep six hours most nights"
    assert not old.active and new.active and new.position == old.position
    assert GoalRevision.objects.get().old_goal == old
    assert old.ratings.get().rating == 3  # the old rating stays with the old wording
    page = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "Earlier wording: “Sleep better”" in page
    # The next check-in rates the new version only.
    from bordin.web.checkins.models import CheckinLink
    from bordin.web.checkins.views import _build_form

    link, _ = CheckinLink.issue(add_session(days_ago=0))
    form = _build_form(link)
    assert f"goal-{new.pk}" in form.fields and f"goal-{old.pk}" not in form.fields
    # An old version cannot be revised again.
    assert client.post(url, {"text": "Something"}).status_code == 404


@pytest.mark.parametrize("text", ["", "   ", "x" * 301])
def test_bad_goal_is_refused(
    client: Any, login: Any, owner: Any, client_record: Any, goals: list[Any], text: str
) -> None:
    login(owner)
    before = journey_fingerprint()
    assert (
        client.post(f"/clients/{client_record.pk}/journey/goals/", {"text": text}).status_code
        == 400
    )
    url = f"/clients/{client_record.pk}/journey/goals/{goals[0].pk}/"
    assert client.post(url, {"text": text}).status_code == 400
    assert journey_fingerprint() == before


def test_goals_are_private_to_scope(
    client: Any, login: Any, colleague: Any, supervisor: Any, client_record: Any, goals: list[Any]
) -> None:
    for user in (colleague, supervisor):
        login(user)
        assert (
            client.post(f"/clients/{client_record.pk}/journey/goals/", {"text": "x"}).status_code
            == 404
        )
        url = f"/clients/{client_record.pk}/journey/goals/{goals[0].pk}/"
        assert client.post(url, {"text": "y"}).status_code == 404
    assert Goal.objects.count() == 2


def test_client_sees_goals_after_a_checkin_when_enabled(
    client: Any, admin: Any, login: Any, goals: list[Any], add_session: Any
) -> None:
    from django.test import Client as Browser

    from bordin.web.checkins.models import CheckinLink
    from tests.web.helpers import checkin_post

    def checkin() -> str:
        browser = Browser()
        _, token = CheckinLink.issue(add_session(days_ago=0))
        browser.get(f"/c/{token}")
        return str(browser.post("/c/", checkin_post(goals, key=token[:40])).content.decode())

    page = checkin()
    assert "data-client-goals" in page and "Sleep better" in page
    login(admin)
    assert client.post("/rematch/settings/", {}).status_code == 302
    assert "data-client-goals" not in checkin()
