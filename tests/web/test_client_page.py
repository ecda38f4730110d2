"""The client page: SVG charts with text alternatives, suggestions, comment, goals, rating."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.cache import cache

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Client, Episode, GoalRating, Response, Session
from bordin.web.delivery.worker import drain
from tests.web.helpers import record_checkin, record_therapist_rating

pytestmark = pytest.mark.django_db


def alliance(v: float) -> dict[str, float]:
    return {"goals": v, "tasks": v, "bond": v, "overall": v}


def wellbeing(v: float) -> dict[str, float]:
    return {"mood": v, "daily": v, "connection": v, "coping": v, "safety": 0}


def history(episode: Any, alliance_values: list[float], wellbeing_values: list[float]) -> list[Any]:
    sessions = []
    n = len(alliance_values)
    for k, (a, w) in enumerate(zip(alliance_values, wellbeing_values, strict=True), start=1):
        s = Session.objects.create(
            episode=episode, number=k, date=date.today() - timedelta(days=7 * (n - k))
        )
        record_checkin(s, alliance(a), wellbeing(w))
        sessions.append(s)
    return sessions


@pytest.fixture
def ruptured(episode: Any, goals: list[Any], owner: Any) -> list[Any]:
    sessions = history(episode, [8, 8, 8, 8, 5], [3, 3, 3, 7, 7])
    # The last drop is mostly on tasks.
    last = Response.objects.get(session=sessions[-1], instrument__code="alliance")
    last.answers = {"goals": 6.0, "tasks": 2.0, "bond": 6.0, "overall": 6.0}
    last.free_text = "<script>alert(1)</script> It felt rushed."
    last.save()
    record_therapist_rating(sessions[-1], {"goals": 8, "tasks": 8, "bond": 8}, owner)
    for s, value in ((sessions[-2], 4), (sessions[-1], 6)):
        for g in goals:
            GoalRating.objects.create(session=s, goal=g, rating=value)
    return sessions


def test_charts_are_inline_svg_with_text_alternatives(
    client: Any, owner: Any, client_record: Any, ruptured: list[Any]
) -> None:
    client.force_login(owner)
    response = client.get(f"/clients/{client_record.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; It felt rushed." in html
    assert "<script" not in html
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 2
    for svg in svgs:
        assert 'role="img"' in svg
        assert re.search(r'<title id="[a-z-]+-title">[^<]+</title>', svg)
        assert re.search(r'<desc id="[a-z-]+-desc">[^<]+</desc>', svg)
        assert "<polyline" in svg
        assert "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    alliance_svg, outcome_svg = svgs
    assert 'class="series client"' in alliance_svg
    assert 'class="series therapist"' in alliance_svg
    assert 'class="marker rupture"' in alliance_svg
    assert "Rupture at session 5" in html
    assert "tasks (how you work together) fell most (6 points)" in html
    assert 'class="marker gain"' in outcome_svg  # sudden gain 3 -> 7 at session 4
    assert "Sudden gain between sessions 3 and 4" in html
    # Data tables as text alternatives.
    assert html.count('<table class="data">') == 2
    assert '<th scope="row">5</th><td>5</td><td>8</td>' in html


def test_suggestions_when_rupture_open(
    client: Any, owner: Any, client_record: Any, ruptured: list[Any]
) -> None:
    client.force_login(owner)
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "data-suggestions" in html
    assert "Invite the client&#x27;s view" in html or "Invite the client's view" in html
    assert "Own your part" in html
    assert "Revisit goals and tasks together" in html
    assert "most on tasks" in html
    assert "Safran &amp; Muran (2000)" in html


def test_no_suggestions_when_all_is_well(
    client: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    history(episode, [7, 8, 8], [4, 5, 6])
    client.force_login(owner)
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "data-suggestions" not in html
    assert "No ruptures found." in html


def test_latest_comment_and_goals(
    client: Any, owner: Any, client_record: Any, ruptured: list[Any], goals: list[Any]
) -> None:
    client.force_login(owner)
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "Latest comment from the client" in html
    assert "Sleep better</th><td>6</td><td>4</td>" in html


def reference_clients(clinic: Any, therapist: Any, n: int, first: int = 0) -> None:
    """``n`` clients of the clinic whose wellbeing improves steadily over four sessions."""
    for k in range(first, first + n):
        other = Client.objects.create(clinic=clinic, therapist=therapist, display_name=f"Ref {k}")
        ep = Episode.objects.create(client=other, start=date.today() - timedelta(days=60))
        start = 2 + (k % 4)
        history(ep, [8, 8, 8, 8], [start, start + k % 2, start + 1 + k % 3, start + 2 + k % 2])


def test_expected_band_needs_enough_reference_data(
    client: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    history(episode, [8, 8, 8, 8], [3, 2, 2, 1])
    client.force_login(owner)
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "Too little data yet for an expected range." in html
    assert 'class="band"' not in html.split('id="outcome-chart-figure"')[1].split("</svg>")[0]
    # Twelve more clients who improve steadily give the model enough data.
    reference_clients(client_record.clinic, owner, 12)
    # The fitted model is cached for analysis.REFIT_SECONDS: until then the page keeps it.
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "Too little data yet for an expected range." in html
    cache.clear()  # stands in for the wait
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    outcome = html.split('id="outcome-chart-figure"')[1].split("</figure>")[0]
    assert '<polygon class="band"' in outcome
    assert "fell outside it on the worse side" in outcome
    assert "Edge of expected range" in outcome
    assert "data-suggestions" in html  # the declining client is off track


def test_therapist_rating_creates_response_and_divergence(
    client: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    (s,) = history(episode, [5], [5])
    client.force_login(owner)
    response = client.post(
        f"/clients/{client_record.pk}/rating/",
        {"session": s.pk, "goals": "8", "tasks": "7", "bond": "9"},
    )
    assert response.status_code == 302
    mine = Response.objects.get(respondent="therapist")
    assert mine.total == pytest.approx(8.0)
    assert mine.rated_by == owner
    assert mine.instrument.code == "alliance_therapist"
    assert Alert.objects.get().kind == "divergence"
    # Rating again updates the same response, and the alert is not duplicated.
    client.post(
        f"/clients/{client_record.pk}/rating/",
        {"session": s.pk, "goals": "9", "tasks": "9", "bond": "9"},
    )
    assert Response.objects.filter(respondent="therapist").count() == 1
    assert Alert.objects.count() == 1


def test_therapist_rating_out_of_range_is_refused(
    client: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    (s,) = history(episode, [5], [5])
    client.force_login(owner)
    response = client.post(
        f"/clients/{client_record.pk}/rating/",
        {"session": s.pk, "goals": "12", "tasks": "7", "bond": "9"},
    )
    assert response.status_code == 400
    assert b"Choose a number from 0 to 10." in response.content
    assert not Response.objects.filter(respondent="therapist").exists()


def test_recording_a_session_issues_a_link(
    client: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    client.force_login(owner)
    response = client.post(
        f"/clients/{client_record.pk}/sessions/",
        {"date": date.today().isoformat(), "attendance": "attended"},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain == [(f"/clients/{client_record.pk}/", 302)]
    html = response.content.decode()
    match = re.search(r'value="http://testserver/c/([A-Za-z0-9_-]+)"', html)
    assert match
    link = CheckinLink.objects.get()
    assert link.session.number == 1
    assert link.token_hash != match.group(1)
    # The link works for the client.
    anonymous = type(client)()
    assert anonymous.get(f"/c/{match.group(1)}").status_code == 302


def test_missed_session_issues_no_link(
    client: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    client.force_login(owner)
    response = client.post(
        f"/clients/{client_record.pk}/sessions/",
        {"date": date.today().isoformat(), "attendance": "missed"},
    )
    assert response.status_code == 302
    assert not CheckinLink.objects.exists()


def test_issue_and_revoke_link(
    client: Any, owner: Any, client_record: Any, add_session: Any
) -> None:
    add_session(days_ago=1)
    client.force_login(owner)
    response = client.post(f"/clients/{client_record.pk}/links/", follow=True)
    assert response.status_code == 200
    token = re.search(r"/c/([A-Za-z0-9_-]+)\"", response.content.decode()).group(1)  # type: ignore[union-attr]
    link = CheckinLink.objects.get()
    page = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert token not in page  # shown once only
    assert client.post(f"/clients/{client_record.pk}/links/{link.pk}/revoke/").status_code == 302
    link.refresh_from_db()
    assert link.revoked_at is not None
    assert type(client)().get(f"/c/{token}").status_code == 404


# ------------------------------------------------------------------- expected trajectories


def test_trajectory_model_is_cached_then_refitted(client_record: Any, owner: Any) -> None:
    from bordin.web.clinic import analysis

    clinic = client_record.clinic
    reference_clients(clinic, owner, 12)
    first = analysis.reference_model(clinic, analysis.WELLBEING)
    assert first is not None
    reference_clients(clinic, owner, 6, first=12)
    cached = analysis.reference_model(clinic, analysis.WELLBEING)
    assert cached is not None
    assert cached.n_reference_sessions == first.n_reference_sessions  # not refitted yet
    cache.clear()  # what REFIT_SECONDS of waiting does
    refitted = analysis.reference_model(clinic, analysis.WELLBEING)
    assert refitted is not None
    assert refitted.n_reference_sessions > first.n_reference_sessions


def test_a_clinic_with_enough_episodes_gets_the_growth_model(
    client: Any, client_record: Any, episode: Any, owner: Any
) -> None:
    from bordin.measures.growth import MIN_REFERENCE_CLIENTS, GrowthModel
    from bordin.measures.trajectories import TrajectoryModel
    from bordin.web.clinic import analysis

    clinic = client_record.clinic
    reference_clients(clinic, owner, MIN_REFERENCE_CLIENTS - 1)
    assert isinstance(analysis.reference_model(clinic, analysis.WELLBEING), TrajectoryModel)
    reference_clients(clinic, owner, 1, first=MIN_REFERENCE_CLIENTS - 1)
    cache.clear()
    model = analysis.reference_model(clinic, analysis.WELLBEING)
    assert isinstance(model, GrowthModel)
    assert model.n_reference_clients == MIN_REFERENCE_CLIENTS
    points = analysis.trajectory(model, [3.0, 3.0, 2.0, 1.0])
    assert [p.session for p in points] == [2, 3, 4]
    assert points[-1].status == "not_on_track"  # wellbeing: higher is better, and it fell
    assert all(0 <= p.upper <= 10 for p in points)
    history(episode, [8, 8, 8, 8], [3, 3, 2, 1])
    client.force_login(owner)
    html = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert '<polygon class="band"' in html


def test_off_track_checkin_raises_a_not_on_track_alert(
    client: Any, client_record: Any, episode: Any, goals: list[Any], owner: Any
) -> None:
    from tests.web.helpers import checkin_post

    reference_clients(client_record.clinic, owner, 12)
    history(episode, [8, 8, 8], [3, 2, 2])
    session = Session.objects.create(episode=episode, number=4, date=date.today())
    _, token = CheckinLink.issue(session, created_by=owner)
    assert client.get(f"/c/{token}").status_code == 302
    assert client.get("/c/").status_code == 200
    worse = {f"wellbeing__{k}": "1" for k in ("mood", "daily", "connection", "coping")}
    response = client.post("/c/", checkin_post(goals, **worse))
    assert response.status_code == 200
    assert drain() >= 1  # the not-on-track rule runs in the worker (alerts.tasks)
    alert = Alert.objects.get(client=client_record, kind="not_on_track")
    assert alert.session == session
    assert "worse than expected" in alert.detail
    # One open not-on-track alert at a time: the next off-track session raises none.
    nxt = Session.objects.create(episode=episode, number=5, date=date.today())
    _, token = CheckinLink.issue(nxt, created_by=owner)
    client.get(f"/c/{token}")
    client.get("/c/")
    client.post("/c/", checkin_post(goals, key="n" * 32, **worse))
    drain()
    assert Alert.objects.filter(client=client_record, kind="not_on_track").count() == 1
