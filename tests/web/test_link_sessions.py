"""Client link sessions and ``next`` parameters (issue 15)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client as Browser

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.checkins.privacy import LINK_STARTED_KEY
from tests.web.helpers import checkin_post, totp_code, totp_device
from tests.web.journey_helpers import open_link

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(add_session: Any, owner: Any, goals: list[Any]) -> str:
    return CheckinLink.issue(add_session(days_ago=0), created_by=owner)[1]


# ------------------------------------------------------------------------------ next=NaN


@pytest.fixture
def alert(client_record: Any, add_session: Any) -> Alert:
    return Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=add_session(days_ago=1),
        kind="risk",
        detail="Safety question answered 'often'.",
        dedupe_key="risk:next",
    )


@pytest.mark.parametrize("bad", ["NaN", "alerts", "//evil.example/", "/\\evil.example", "x.y"])
def test_alert_action_with_a_bad_next_goes_to_the_client(
    client: Any, owner: Any, alert: Alert, bad: str
) -> None:
    client.force_login(owner)
    response = client.post(f"/alerts/{alert.pk}/acknowledge/", {"next": bad})
    assert response.status_code == 302
    assert response["Location"] == f"/clients/{alert.client_id}/"


@pytest.mark.parametrize("bad", ["NaN", "//evil.example/", "https://evil.example/"])
def test_second_factor_with_a_bad_next_goes_to_the_caseload(owner: Any, bad: str) -> None:
    browser = Browser()
    browser.force_login(owner)
    device = totp_device(owner)
    assert browser.get("/account/2fa/verify/", {"next": bad}).status_code == 200
    response = browser.post("/account/2fa/verify/", {"code": totp_code(device), "next": bad})
    assert response.status_code == 302
    assert response["Location"] == "/"


# ---------------------------------------------------------------------------- link sessions


def test_thank_you_page_is_shown_once_then_the_session_ends(
    client: Any, token: str, goals: list[Any]
) -> None:
    assert client.get(f"/c/{token}").status_code == 302
    thanks = client.post("/c/", checkin_post(goals))
    assert thanks.status_code == 200
    assert 'data-page="checkin-done"' not in thanks.content.decode()
    again = client.get("/c/")
    assert again.status_code == 200
    assert 'data-page="checkin-done"' in again.content.decode()
    assert "bordin_checkin_link" not in client.session
    assert client.get("/c/").status_code == 404


def test_link_session_has_an_absolute_limit(client: Any, token: str, settings: Any) -> None:
    settings.BORDIN_LINK_SESSION_MINUTES = 15
    assert client.get(f"/c/{token}").status_code == 302
    assert client.get("/c/").status_code == 200
    session = client.session
    assert session.get_expiry_age() <= 15 * 60
    session[LINK_STARTED_KEY] = int(time.time()) - 15 * 60 - 1
    session.save()
    assert client.get("/c/").status_code == 404
    assert "bordin_checkin_link" not in client.session


def test_journey_link_session_has_the_same_limit(client: Any, episode: Any) -> None:
    open_link(client, "intake", episode)
    assert client.get("/j/").status_code == 200
    session = client.session
    session[LINK_STARTED_KEY] = int(time.time()) - 16 * 60
    session.save()
    assert client.get("/j/").status_code == 404


def test_journey_link_in_a_password_only_staff_session_is_not_sent_to_2fa(
    owner: Any, episode: Any
) -> None:
    from bordin.web.journey.models import JourneyLink

    browser = Browser()
    browser.force_login(owner)  # password only: the second factor is not passed
    _, token = JourneyLink.issue("intake", episode)
    response = browser.get(f"/j/{token}")
    assert response.status_code == 302
    assert response["Location"] == "/j/"
    assert token not in response["Location"]
    assert browser.get("/j/").status_code == 200


def test_graduation_link_survives_previews_and_opens_with_a_click(episode: Any) -> None:
    from bordin.web.journey.models import JourneyLink

    _, token = JourneyLink.issue("graduation", episode)
    for _ in range(3):  # a mail scanner, a link preview, the client's first look
        page = Browser().get(f"/j/{token}")
        assert page.status_code == 200
        assert 'method="post"' in page.content.decode()
    browser = Browser(enforce_csrf_checks=True)
    page = browser.get(f"/j/{token}").content.decode()
    csrf = page.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    opened = browser.post(f"/j/{token}", {"csrfmiddlewaretoken": csrf})
    assert opened.status_code == 302
    assert Browser().post(f"/j/{token}").status_code == 404  # used up by the click
