"""Refusals are audited: role 403s, anonymous requests for staff pages; a place for clinic-less
events (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from bordin.web.audit.models import AuditEvent
from tests.web.conftest import PASSWORD

REFUSED_FOR_RESEARCHER = ["/audit/", "/audit/export.csv", "/rematch/", "/alerts/"]


def denied() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="denied").order_by("pk"))


@pytest.mark.parametrize("path", REFUSED_FOR_RESEARCHER)
def test_role_refusals_are_audited(login: Any, researcher: Any, clinic: Any, path: str) -> None:
    assert login(researcher).get(path).status_code == 403
    (event,) = denied()
    assert (event.username, event.role, event.clinic_id) == ("researcher", "researcher", clinic.pk)
    assert (event.path, event.detail) == (path, "403 refused")


def test_export_refusal_for_a_therapist_is_audited(login: Any, owner: Any) -> None:
    assert login(owner).get("/exports/scores.csv").status_code == 403
    assert [e.path for e in denied()] == ["/exports/scores.csv"]


@pytest.mark.parametrize("path", ["/", "/audit/", "/alerts/", "/exports/scores.csv"])
def test_anonymous_requests_for_staff_pages_are_audited(db: None, path: str) -> None:
    response = Client(REMOTE_ADDR="192.0.2.44").get(path)
    assert response.status_code == 302
    (event,) = denied()
    assert (event.path, event.ip_address, event.clinic_id) == (path, "192.0.2.44", None)
    assert event.detail == "anonymous request for a staff page"


def test_the_login_page_itself_is_not_a_refusal(db: None) -> None:
    assert Client().get("/login/").status_code == 200
    assert denied() == []


def test_site_operator_sees_clinic_less_events(
    login: Any, admin: Any, clinic: Any, db: None
) -> None:
    Client().get("/audit/")  # anonymous: no clinic
    Client().post("/login/", {"username": "nobody", "password": PASSWORD})  # unknown user
    operator = get_user_model().objects.create_superuser("operator", password=PASSWORD)
    page = login(operator).get("/audit/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "nobody" in text
    assert "anonymous request for a staff page" in text
    # The clinic admin does not see them (they belong to no clinic).
    admin_page = login(admin).get("/audit/").content.decode()
    assert "nobody" not in admin_page
