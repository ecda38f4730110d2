"""The first-consultation fit check, re-match requests and assigning a second therapist."""

from __future__ import annotations

from typing import Any

import pytest

from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Client, Episode, Goal
from bordin.web.journey.models import FitCheck, Intake, JourneyLink, RematchRequest
from tests.web.conftest import make_staff
from tests.web.journey_helpers import fit_post, intake_post, journey_fingerprint, open_link

pytestmark = pytest.mark.django_db


@pytest.fixture
def first_session(add_session: Any) -> Any:
    return add_session(days_ago=1)


def _fit(client: Any, episode: Any, session: Any, **overrides: Any) -> Any:
    open_link(client, "fit_check", episode, session)
    return client.post("/j/", fit_post(**overrides))


def test_fit_check_page_is_warm_about_switching(
    client: Any, episode: Any, first_session: Any
) -> None:
    open_link(client, "fit_check", episode, first_session)
    page = client.get("/j/").content.decode()
    assert "Many people try more than one therapist" in page
    assert "My therapist may see these answers." in page
    assert 'type="checkbox"' in page and " checked" not in page  # consent is opt-in


def test_switch_creates_a_rematch_request(
    client: Any, episode: Any, first_session: Any, admin: Any, login: Any
) -> None:
    response = _fit(client, episode, first_session)
    assert response.status_code == 200
    assert "data-rematch-requested" in response.content.decode()
    fit = FitCheck.objects.get()
    assert (fit.heard, fit.warmth, fit.honest, fit.choice) == (3, 4, 2, "switch")
    assert not fit.share_with_therapist
    rematch = RematchRequest.objects.get()
    assert rematch.status == "open" and rematch.client_id == episode.client_id
    assert AuditEvent.objects.filter(object_type="rematch_request", action="create").exists()
    login(admin)
    listing = client.get("/rematch/").content.decode()
    assert "Client A" in listing and f'data-rematch-id="{rematch.pk}"' in listing


@pytest.mark.parametrize("choice", ["continue", "unsure"])
def test_other_choices_create_no_request(
    client: Any, episode: Any, first_session: Any, choice: str
) -> None:
    assert _fit(client, episode, first_session, choice=choice).status_code == 200
    assert not RematchRequest.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"heard": None},
        {"heard": "11"},
        {"warmth": "-1"},
        {"honest": "7.5"},
        {"choice": None},
        {"choice": "fire-them"},
        {"idempotency_key": "x" * 65},
    ],
)
def test_bad_fit_check_is_refused_and_stores_nothing(
    client: Any, episode: Any, first_session: Any, overrides: dict[str, Any]
) -> None:
    before = journey_fingerprint()
    assert _fit(client, episode, first_session, **overrides).status_code == 400
    assert journey_fingerprint()[1:] == before[1:]
    assert not FitCheck.objects.exists()


def _client_page(client: Any, login: Any, user: Any, client_record: Any) -> str:
    login(user)
    return str(client.get(f"/clients/{client_record.pk}/").content.decode())


def test_fit_answers_are_hidden_from_the_therapist_without_consent(
    client: Any, login: Any, owner: Any, client_record: Any, episode: Any, first_session: Any
) -> None:
    from django.test import Client as Browser

    browser = Browser()
    open_link(browser, "fit_check", episode, first_session)
    browser.post("/j/", fit_post(heard="3", warmth="4", honest="2"))
    page = _client_page(client, login, owner, client_record)
    assert "data-fit-private" in page
    assert "data-fit-answers" not in page
    assert "3 / 10" not in page and "Try someone else" not in page
    # The progress report does not carry them either.
    report = client.get(f"/clients/{client_record.pk}/journey/report.pdf")
    assert report.status_code == 200


def test_fit_answers_are_shown_with_consent(
    client: Any, login: Any, owner: Any, client_record: Any, episode: Any, first_session: Any
) -> None:
    from django.test import Client as Browser

    browser = Browser()
    open_link(browser, "fit_check", episode, first_session)
    browser.post("/j/", fit_post(choice="continue", share_with_therapist="on", heard="9"))
    page = _client_page(client, login, owner, client_record)
    assert "data-fit-answers" in page and "9 / 10" in page


def test_fit_link_needs_a_first_session(
    client: Any, login: Any, owner: Any, client_record: Any, episode: Any
) -> None:
    login(owner)
    response = client.post(f"/clients/{client_record.pk}/journey/fit-link/")
    assert response.status_code == 302
    assert not JourneyLink.objects.exists()


def test_admin_assigns_a_second_therapist(
    client: Any,
    login: Any,
    owner: Any,
    colleague: Any,
    admin: Any,
    supervisor: Any,
    client_record: Any,
    episode: Any,
    first_session: Any,
) -> None:
    from django.test import Client as Browser

    browser = Browser()
    open_link(browser, "intake", episode)
    browser.post("/j/", intake_post())
    open_link(browser, "fit_check", episode, first_session)
    browser.post("/j/", fit_post())
    rematch = RematchRequest.objects.get()

    # Nobody but the clinic admin sees or acts on the request.
    for user in (owner, colleague, supervisor):
        login(user)
        assert client.get("/rematch/").status_code == 403
        assert client.get(f"/rematch/{rematch.pk}/").status_code == 404
        post = client.post(f"/rematch/{rematch.pk}/assign/", {"therapist": colleague.pk})
        assert post.status_code == 404
    login(admin)
    page = client.get(f"/rematch/{rematch.pk}/").content.decode()
    assert "Suggested therapists" in page
    assert "3 / 10" not in page  # the admin sees the request, not the private answers
    # Bad input: no therapist, the same therapist again, someone from nowhere.
    for bad in ({}, {"therapist": owner.pk}, {"therapist": 999999}, {"therapist": "abc"}):
        before = journey_fingerprint()
        assert client.post(f"/rematch/{rematch.pk}/assign/", bad).status_code == 400
        assert journey_fingerprint() == before
    response = client.post(f"/rematch/{rematch.pk}/assign/", {"therapist": colleague.pk})
    assert response.status_code == 302
    new_client = Client.objects.get(therapist=colleague, display_name="Client A")
    assert response["Location"] == f"/clients/{new_client.pk}/"
    new_episode = Episode.objects.get(client=new_client)
    carried = Intake.objects.get(episode=new_episode)
    assert carried.carried_from is not None and carried.past_therapy == "unhelpful"
    assert [g.text for g in Goal.objects.filter(episode=new_episode)] == [
        "Sleep through the night",
        "Call my sister every week",
    ]
    client_record.refresh_from_db()
    episode.refresh_from_db()
    assert not client_record.active and episode.status == "closed"
    rematch.refresh_from_db()
    assert rematch.status == "assigned" and rematch.new_client == new_client
    # Assigning twice does nothing.
    assert (
        client.post(f"/rematch/{rematch.pk}/assign/", {"therapist": colleague.pk}).status_code
        == 302
    )
    assert Client.objects.filter(display_name="Client A").count() == 2

    # The first therapist (and their supervisor) lose access to the new episode.
    for user in (owner, supervisor):
        login(user)
        assert client.get(f"/clients/{new_client.pk}/").status_code == 404
        client.cookies.pop("messages", None)  # the admin's flash message, in this test client
        assert "Client A" not in client.get("/").content.decode()
    # The second therapist sees it, with the intake and the hesitant-start note, but never the
    # first therapist's fit-check answers.
    page = _client_page(client, login, colleague, new_client)
    assert "data-hesitant-start" in page and "data-fit-answers" not in page
    assert 'data-alert-kind="hesitant-start"' in client.get("/").content.decode()


def test_outsider_sees_no_request(
    client: Any, login: Any, outsider: Any, client_record: Any, episode: Any, first_session: Any
) -> None:
    _fit(client, episode, first_session)
    rematch = RematchRequest.objects.get()
    login(outsider)
    assert "Client A" not in client.get("/rematch/").content.decode()
    assert client.get(f"/rematch/{rematch.pk}/").status_code == 404
    other = make_staff("other-therapist", outsider.staff.clinic)
    assert client.post(f"/rematch/{rematch.pk}/assign/", {"therapist": other.pk}).status_code == 404
    assert RematchRequest.objects.get().status == "open"


@pytest.mark.parametrize("state", ["expired", "used", "revoked"])
def test_unusable_fit_links_store_nothing(
    client: Any, episode: Any, first_session: Any, state: str
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    link, _ = open_link(client, "fit_check", episode, first_session)
    past = timezone.now() - timedelta(hours=1)
    field = {"expired": "expires_at", "used": "used_at", "revoked": "revoked_at"}[state]
    JourneyLink.objects.filter(pk=link.pk).update(**{field: past})
    assert client.get("/j/").status_code == 404
    assert client.post("/j/", fit_post()).status_code == 404
    assert not FitCheck.objects.exists() and not RematchRequest.objects.exists()
