"""Intake before the first session: the secure link, validation, goals, the hesitant-start note."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Goal
from bordin.web.journey.models import Intake, JourneyLink
from tests.web.journey_helpers import intake_post, journey_fingerprint, open_link

pytestmark = pytest.mark.django_db


def test_intake_stores_answers_goals_and_uses_up_the_link(client: Any, episode: Any) -> None:
    link, token = open_link(client, "intake", episode)
    page = client.get("/j/")
    assert page.status_code == 200
    assert token not in page.content.decode()
    assert "Before your first session" in page.content.decode()
    response = client.post("/j/", intake_post())
    assert response.status_code == 200
    assert "Your answers have reached" in response.content.decode()
    intake = Intake.objects.get(episode=episode)
    assert intake.problem_areas == ["low_mood", "sleep"]
    assert intake.past_therapy == "unhelpful"
    assert intake.hesitant_start
    assert [g.text for g in Goal.objects.filter(episode=episode)] == [
        "Sleep through the night",
        "Call my sister every week",
    ]
    link.refresh_from_db()
    assert link.used_at is not None
    # The client's own words are encrypted at rest.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT own_words FROM journey_intake WHERE id = %s", [intake.pk])
        raw = cursor.fetchone()[0]
    assert "heavy" not in raw
    # Audited, with the link as the actor and no token in the path.
    events = AuditEvent.objects.filter(object_type="intake", client_id=episode.client_id)
    assert events.count() == 1
    assert "intake link" in events.get().detail
    assert token not in "".join(AuditEvent.objects.values_list("path", flat=True))
    # The same post again (double tap) shows the thank-you page and stores nothing new.
    assert client.post("/j/", intake_post()).status_code == 200
    assert Intake.objects.count() == 1
    # A different post on the used link is refused.
    assert client.post("/j/", intake_post(key="z" * 32)).status_code == 404
    # The token cannot be used again.
    assert client.get(f"/j/{token}").status_code == 404


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"problem_areas": None}, "problem_areas"),
        ({"problem_areas": ["low_mood", "astrology"]}, "problem_areas"),
        ({"goal_1": ""}, "goal_1"),
        ({"goal_2": "x" * 301}, "goal_2"),
        ({"own_words": "x" * 2001}, "own_words"),
        ({"past_what_happened": "x" * 5000}, "past_what_happened"),
        ({"past_therapy": None}, "past_therapy"),
        ({"past_therapy": "terrible"}, "past_therapy"),
        ({"formats": ["teleport"]}, "formats"),
        ({"language": "x" * 101}, "language"),
        ({"idempotency_key": "short"}, "idempotency_key"),
    ],
)
def test_bad_intake_is_refused_and_stores_nothing(
    client: Any, episode: Any, overrides: dict[str, Any], field: str
) -> None:
    open_link(client, "intake", episode)
    before = journey_fingerprint()
    response = client.post("/j/", intake_post(**overrides))
    assert response.status_code == 400
    assert f'id="{field}-error"' in response.content.decode() or field == "idempotency_key"
    assert journey_fingerprint() == before
    # Everything else typed is kept.
    if field != "own_words":
        assert "Everything feels heavy since the move." in response.content.decode()


def test_no_past_therapy_drops_the_past_answers(client: Any, episode: Any) -> None:
    open_link(client, "intake", episode)
    client.post("/j/", intake_post(past_therapy="none"))
    intake = Intake.objects.get()
    assert intake.past_what_happened == "" and not intake.hesitant_start


@pytest.mark.parametrize("state", ["expired", "revoked", "tampered", "unknown", "fit_check"])
def test_unusable_links_get_the_same_404(client: Any, episode: Any, state: str) -> None:
    link, token = JourneyLink.issue("intake", episode)
    if state == "expired":
        JourneyLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(1))
    elif state == "revoked":
        JourneyLink.objects.filter(pk=link.pk).update(revoked_at=timezone.now())
    elif state == "tampered":
        token = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    elif state == "unknown":
        token = "x" * 43
    if state == "fit_check":
        # A fit-check link shows the fit check, never the intake: posting an intake fails.
        link.purpose = "fit_check"
        link.save()
        assert client.get(f"/j/{token}").status_code == 302
        assert client.post("/j/", intake_post()).status_code == 400
    else:
        response = client.get(f"/j/{token}")
        assert response.status_code == 404
        assert "This link isn't valid" in response.content.decode()
        assert client.post("/j/", intake_post()).status_code == 404
    assert not Intake.objects.exists()


def test_link_expiring_between_opening_and_posting_is_refused(client: Any, episode: Any) -> None:
    link, _ = open_link(client, "intake", episode)
    JourneyLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(1))
    assert client.post("/j/", intake_post()).status_code == 404
    assert not Intake.objects.exists()


def test_therapist_issues_intake_link_and_sees_hesitant_start(
    client: Any, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    login(owner)
    response = client.post(f"/clients/{client_record.pk}/journey/intake-link/", follow=True)
    assert response.status_code == 200
    url = re.search(r'value="(http[^"]+/j/[^"]+)"', response.content.decode())
    assert url, "the new link is shown once"
    page = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "data-intake-pending" in page
    # The client answers (a separate browser).
    from django.test import Client as Browser

    browser = Browser()
    token = url.group(1).rsplit("/", 1)[1]
    assert browser.get(f"/j/{token}").status_code == 302
    assert browser.post("/j/", intake_post()).status_code == 200
    page = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert "data-hesitant-start" in page
    assert "The last counsellor kept telling me what to do." in page
    assert "courage" in page
    caseload = client.get("/").content.decode()
    assert 'data-alert-kind="hesitant-start"' in caseload
    # An intake cannot be sent twice.
    client.post(f"/clients/{client_record.pk}/journey/intake-link/")
    assert JourneyLink.objects.filter(purpose="intake").count() == 1


def test_hesitant_start_badge_goes_after_three_sessions(
    client: Any, login: Any, owner: Any, client_record: Any, episode: Any, add_session: Any
) -> None:
    open_link(client, "intake", episode)
    client.post("/j/", intake_post())
    login(owner)
    for _ in range(2):
        add_session()
    assert 'data-alert-kind="hesitant-start"' in client.get("/").content.decode()
    add_session()
    assert 'data-alert-kind="hesitant-start"' not in client.get("/").content.decode()
    # The note stays on the client page.
    assert "data-hesitant-start" in client.get(f"/clients/{client_record.pk}/").content.decode()


def test_only_the_therapist_and_admin_issue_intake_links(
    client: Any, login: Any, colleague: Any, outsider: Any, supervisor: Any, client_record: Any
) -> None:
    for user in (colleague, outsider, supervisor):
        login(user)
        assert client.post(f"/clients/{client_record.pk}/journey/intake-link/").status_code == 404
    assert not JourneyLink.objects.exists()


def test_therapist_revokes_an_open_intake_link(
    client: Any, login: Any, owner: Any, colleague: Any, client_record: Any, episode: Any
) -> None:
    link, token = JourneyLink.issue("intake", episode)
    login(colleague)
    assert (
        client.post(f"/clients/{client_record.pk}/journey/links/{link.pk}/revoke/").status_code
        == 404
    )
    login(owner)
    page = client.get(f"/clients/{client_record.pk}/").content.decode()
    assert 'data-action="revoke-journey-link"' in page
    assert (
        client.post(f"/clients/{client_record.pk}/journey/links/{link.pk}/revoke/").status_code
        == 302
    )
    assert (
        client.post(f"/clients/{client_record.pk}/journey/links/{link.pk}/revoke/").status_code
        == 404
    )
    from django.test import Client as Browser

    assert Browser().get(f"/j/{token}").status_code == 404


def test_using_one_intake_link_revokes_the_others(client: Any, episode: Any) -> None:
    other, other_token = JourneyLink.issue("intake", episode)
    open_link(client, "intake", episode)
    assert client.post("/j/", intake_post()).status_code == 200
    other.refresh_from_db()
    assert other.revoked_at is not None
    from django.test import Client as Browser

    assert Browser().get(f"/j/{other_token}").status_code == 404
