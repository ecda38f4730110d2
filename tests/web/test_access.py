"""Every staff view against owner, colleague, clinic admin, outsider and anonymous.

Records outside a user's scope answer 404 (never 403), so their existence is not revealed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Response, Session
from bordin.web.clinic.scoping import clients_for, get_client_for
from tests.web.helpers import record_checkin

pytestmark = pytest.mark.django_db

ALLOWED = {"owner": True, "colleague": False, "admin": True, "outsider": False}


@pytest.fixture
def world(client_record: Any, add_session: Any, colleague: Any, admin: Any, outsider: Any) -> Any:
    session = add_session(days_ago=2)
    record_checkin(session, {"goals": 8, "tasks": 8, "bond": 8, "overall": 8})
    link, _ = CheckinLink.issue(add_session(days_ago=0))
    alert = Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=session,
        kind="rupture",
        dedupe_key="test-rupture",
    )
    return {"client": client_record, "session": session, "link": link, "alert": alert}


def _user(name: str, request: pytest.FixtureRequest) -> Any:
    return None if name == "anonymous" else request.getfixturevalue(name)


def _requests(w: Any) -> dict[str, tuple[str, str, dict[str, Any]]]:
    c, s, link, alert = w["client"], w["session"], w["link"], w["alert"]
    return {
        "client-page": ("get", f"/clients/{c.pk}/", {}),
        "rating": (
            "post",
            f"/clients/{c.pk}/rating/",
            {"session": s.pk, "goals": "7", "tasks": "7", "bond": "7"},
        ),
        "record-session": (
            "post",
            f"/clients/{c.pk}/sessions/",
            {"date": "2026-01-05", "attendance": "attended"},
        ),
        "issue-link": ("post", f"/clients/{c.pk}/links/", {}),
        "revoke-link": ("post", f"/clients/{c.pk}/links/{link.pk}/revoke/", {}),
        "acknowledge": ("post", f"/alerts/{alert.pk}/acknowledge/", {}),
    }


VIEWS = ["client-page", "rating", "record-session", "issue-link", "revoke-link", "acknowledge"]
USERS = ["owner", "colleague", "admin", "outsider", "anonymous"]


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("who", USERS)
def test_record_views(
    client: Any, world: Any, request: pytest.FixtureRequest, view: str, who: str
) -> None:
    user = _user(who, request)
    if user is not None:
        client.force_login(user)
    method, url, data = _requests(world)[view]
    before = (Response.objects.count(), Session.objects.count(), CheckinLink.objects.count())
    response = getattr(client, method)(url, data)
    if user is None:
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
    elif ALLOWED[who]:
        assert response.status_code in (200, 302)
    else:
        assert response.status_code == 404
    if user is None or not ALLOWED[who]:
        after = (Response.objects.count(), Session.objects.count(), CheckinLink.objects.count())
        assert after == before
        assert CheckinLink.objects.get(pk=world["link"].pk).revoked_at is None
        assert Alert.objects.get(pk=world["alert"].pk).status == "new"


@pytest.mark.parametrize("who", USERS)
def test_resolve_view(client: Any, world: Any, request: pytest.FixtureRequest, who: str) -> None:
    alert = world["alert"]
    Alert.objects.filter(pk=alert.pk).update(status="acknowledged")
    user = _user(who, request)
    if user is not None:
        client.force_login(user)
    response = client.post(f"/alerts/{alert.pk}/resolve/", {"note": "Talked it through."})
    expected = 302 if user is None or ALLOWED[who] else 404
    assert response.status_code == expected
    status = Alert.objects.get(pk=alert.pk).status
    assert status == ("resolved" if user is not None and ALLOWED[who] else "acknowledged")


@pytest.mark.parametrize("url", ["/", "/alerts/"])
@pytest.mark.parametrize("who", USERS)
def test_lists_show_only_what_is_in_scope(
    client: Any, world: Any, request: pytest.FixtureRequest, url: str, who: str
) -> None:
    user = _user(who, request)
    if user is not None:
        client.force_login(user)
    response = client.get(url)
    if user is None:
        assert response.status_code == 302
        assert response["Location"] == f"/login/?next={url}"
        return
    assert response.status_code == 200
    html = response.content.decode()
    assert ("Client A" in html) is ALLOWED[who]
    assert (f'data-client-id="{world["client"].pk}"' in html) is (ALLOWED[who] and url == "/")


def test_scoping_helpers(world: Any, owner: Any, colleague: Any, admin: Any, outsider: Any) -> None:
    from django.contrib.auth.models import AnonymousUser
    from django.http import Http404

    c = world["client"]
    assert list(clients_for(owner)) == [c]
    assert list(clients_for(admin)) == [c]
    assert list(clients_for(colleague)) == []
    assert list(clients_for(outsider)) == []
    assert list(clients_for(AnonymousUser())) == []
    assert get_client_for(_request(owner), c.pk) == c
    with pytest.raises(Http404):
        get_client_for(_request(outsider), c.pk)


def _request(user: Any) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    return request


def test_user_without_staff_profile_sees_nothing(client: Any, world: Any) -> None:
    from django.contrib.auth import get_user_model

    stranger = get_user_model().objects.create_user("stranger", password="x" * 12)
    client.force_login(stranger)
    assert client.get(f"/clients/{world['client'].pk}/").status_code == 404
    assert "Client A" not in client.get("/").content.decode()


def test_login_page_and_redirect(client: Any, owner: Any) -> None:
    from tests.web.conftest import PASSWORD
    from tests.web.helpers import verify_session

    page = client.get("/login/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="username"' in html
    assert 'name="password"' in html
    response = client.post("/login/", {"username": "owner", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/"
    # The password alone is not enough: set up (or enter) the second factor first.
    assert client.get("/")["Location"] == "/account/2fa/setup/?next=%2F"
    verify_session(client, owner)
    assert client.get("/").status_code == 200


def test_logout_requires_post(login: Callable[[Any], Any], owner: Any) -> None:
    c = login(owner)
    assert c.get("/logout/").status_code == 405
    assert c.post("/logout/").status_code == 302
    assert c.get("/").status_code == 302


def test_csrf_is_enforced(owner: Any, world: Any) -> None:
    from django.test import Client

    c = Client(enforce_csrf_checks=True)
    c.force_login(owner)
    response = c.post(f"/alerts/{world['alert'].pk}/acknowledge/")
    assert response.status_code == 403
    assert Alert.objects.get(pk=world["alert"].pk).status == "new"


def test_security_settings() -> None:
    from django.conf import settings

    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert "django.middleware.security.SecurityMiddleware" in settings.MIDDLEWARE
    assert "bordin.web.csrf.ClientFormCsrfMiddleware" in settings.MIDDLEWARE  # Django's, subclassed
    assert not settings.DEBUG
    assert settings.SESSION_COOKIE_SECURE
    assert settings.CSRF_COOKIE_SECURE
