"""CSRF with "no-referrer" client pages: `Origin: null` is accepted for client forms only.

Under "no-referrer" browsers send `Origin: null` with a form POST. bordin.web.csrf accepts that
on client paths when the browser does not call the request cross-site, and the session-bound
CSRF token must still match. Everything else keeps Django's checks.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Response
from tests.web.helpers import checkin_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser() -> Client:
    """A client that enforces CSRF as a real browser session meets it."""
    return Client(enforce_csrf_checks=True)


def open_form(browser: Client, session: Any, owner: Any) -> str:
    """Follow a fresh link to the form and return the CSRF token printed in it."""
    token = CheckinLink.issue(session, created_by=owner)[1]
    assert browser.get(f"/c/{token}").status_code == 302
    page = browser.get("/c/")
    assert page.status_code == 200
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("fetch_site", ["same-origin", None])
def test_null_origin_with_the_session_token_is_accepted(
    browser: Client, add_session: Any, owner: Any, goals: list[Any], fetch_site: str | None
) -> None:
    csrf = open_form(browser, add_session(days_ago=0), owner)
    headers = {"HTTP_ORIGIN": "null"}
    if fetch_site is not None:
        headers["HTTP_SEC_FETCH_SITE"] = fetch_site
    done = browser.post("/c/", {**checkin_post(goals), "csrfmiddlewaretoken": csrf}, **headers)
    assert done.status_code == 200 and b"Thank you" in done.content
    assert Response.objects.count() == 2


@pytest.mark.parametrize(
    ("headers", "with_token"),
    [
        ({"HTTP_ORIGIN": "null", "HTTP_SEC_FETCH_SITE": "cross-site"}, True),
        ({"HTTP_ORIGIN": "null", "HTTP_SEC_FETCH_SITE": "same-site"}, True),
        ({"HTTP_ORIGIN": "null", "HTTP_SEC_FETCH_SITE": "same-origin"}, False),
        ({"HTTP_ORIGIN": "https://evil.example"}, True),
    ],
)
def test_forgeries_are_refused_and_store_nothing(
    browser: Client,
    add_session: Any,
    owner: Any,
    goals: list[Any],
    headers: dict[str, str],
    with_token: bool,
) -> None:
    csrf = open_form(browser, add_session(days_ago=0), owner)
    data = checkin_post(goals)
    if with_token:
        data["csrfmiddlewaretoken"] = csrf
    refused = browser.post("/c/", data, **headers)
    assert refused.status_code == 403
    assert Response.objects.count() == 0


def test_staff_forms_never_accept_a_null_origin(browser: Client, owner: Any) -> None:
    page = browser.get("/login/")
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    assert found is not None
    refused = browser.post(
        "/login/",
        {"username": "owner", "password": "x", "csrfmiddlewaretoken": found.group(1)},
        HTTP_ORIGIN="null",
        HTTP_SEC_FETCH_SITE="same-origin",
    )
    assert refused.status_code == 403


def test_tokens_live_in_the_session_not_a_cookie(browser: Client) -> None:
    browser.get("/login/")
    assert "csrftoken" not in browser.cookies


def test_a_missing_csrf_middleware_fails_the_system_check(settings: Any) -> None:
    from bordin.web.csrf import check_csrf_middleware

    assert check_csrf_middleware() == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "csrf" not in m.lower()]
    assert [e.id for e in check_csrf_middleware()] == ["bordin.E003"]
