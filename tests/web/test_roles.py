"""Supervisors, researchers and the de-identified export (roles are decided in scoping.py)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from bordin.web.alerts.models import Alert
from bordin.web.clinic import scoping
from bordin.web.clinic.models import Client, Response
from tests.web.conftest import make_staff
from tests.web.helpers import record_checkin, record_therapist_rating

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(client_record: Any, add_session: Any, colleague: Any, owner: Any) -> dict[str, Any]:
    session = add_session(days_ago=2)
    record_checkin(
        session,
        {"goals": 8, "tasks": 7, "bond": 9, "overall": 8},
        {"mood": 5, "daily": 6, "connection": 5, "coping": 6},
    )
    Response.objects.filter(session=session, instrument__code="alliance").update(
        free_text="My sister Jane Example knows"
    )
    record_therapist_rating(session, {"goals": 7, "tasks": 7, "bond": 7}, owner)
    theirs = Client.objects.create(
        clinic=client_record.clinic, therapist=colleague, display_name="Colleague's client"
    )
    alert = Alert.objects.create(
        clinic=client_record.clinic, client=client_record, kind="rupture", dedupe_key="r1"
    )
    return {"client": client_record, "theirs": theirs, "session": session, "alert": alert}


def test_supervisor_reads_own_and_supervisees_clients_only(
    world: dict[str, Any], supervisor: Any, owner: Any, clinic: Any, other_clinic: Any
) -> None:
    own = Client.objects.create(clinic=clinic, therapist=supervisor, display_name="Own")
    assert set(scoping.clients_for(supervisor)) == {world["client"], own}
    assert set(scoping.clients_for(supervisor, write=True)) == {own}
    # A supervisee from another clinic brings none of that clinic's clients.
    elsewhere = make_staff("elsewhere", other_clinic)
    Client.objects.create(clinic=other_clinic, therapist=elsewhere, display_name="Far")
    supervisor.staff.supervisees.add(elsewhere)
    assert set(scoping.clients_for(supervisor)) == {world["client"], own}


def test_supervisor_page_is_read_only(client: Any, world: dict[str, Any], supervisor: Any) -> None:
    client.force_login(supervisor)
    html = client.get(f"/clients/{world['client'].pk}/").content.decode()
    assert "Client A" in html
    assert "data-read-only" in html
    assert "/rating/" not in html
    assert "/sessions/" not in html
    assert 'data-action="acknowledge"' not in html
    alerts = client.get("/alerts/").content.decode()
    assert f'data-alert-id="{world["alert"].pk}"' in alerts
    assert 'data-action="acknowledge"' not in alerts


def test_owner_still_gets_the_forms(client: Any, world: dict[str, Any], owner: Any) -> None:
    client.force_login(owner)
    html = client.get(f"/clients/{world['client'].pk}/").content.decode()
    assert "/rating/" in html
    assert "data-read-only" not in html
    assert 'data-action="acknowledge"' in client.get("/alerts/").content.decode()


def test_researcher_sees_no_client(client: Any, world: dict[str, Any], researcher: Any) -> None:
    assert list(scoping.clients_for(researcher)) == []
    client.force_login(researcher)
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/exports/"
    page = client.get("/exports/").content.decode()
    assert "Client A" not in page
    assert 'href="/exports/scores.csv"' in page
    assert 'href="/alerts/"' not in page  # no clinical navigation


def _export(client: Any, user: Any) -> list[dict[str, str]]:
    client.force_login(user)
    response = client.get("/exports/scores.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_export_is_de_identified(
    client: Any, world: dict[str, Any], researcher: Any, admin: Any, owner: Any
) -> None:
    rows = _export(client, researcher)
    c = world["client"]
    assert list(rows[0]) == ["client_id", "session", "measure", "score", "date"]
    assert {r["measure"] for r in rows} == {"alliance", "wellbeing", "alliance_therapist"}
    assert {r["client_id"] for r in rows} == {scoping.pseudonym(c.clinic_id, c.pk)}
    assert all(r["session"] == "1" and r["date"] == str(world["session"].date) for r in rows)
    body = client.get("/exports/scores.csv").content.decode()
    for secret in ("Client A", "Jane", owner.username):
        assert secret not in body
    assert _export(client, admin) == rows


def test_pseudonyms_differ_per_clinic_and_key(settings: Any) -> None:
    a = scoping.pseudonym(1, 42)
    assert a == scoping.pseudonym(1, 42)
    assert len(a) == 16
    assert a != scoping.pseudonym(2, 42)
    assert a != scoping.pseudonym(1, 43)
    settings.SECRET_KEY = "another-key"  # noqa: S105 - a test key, not a secret
    assert scoping.pseudonym(1, 42) != a


def test_export_is_per_clinic(client: Any, world: dict[str, Any], outsider: Any) -> None:
    assert _export(client, outsider) == []


@pytest.mark.parametrize("who", ["owner", "supervisor", "colleague"])
def test_export_is_refused_to_clinical_roles(
    client: Any, world: dict[str, Any], request: pytest.FixtureRequest, who: str
) -> None:
    client.force_login(request.getfixturevalue(who))
    assert client.get("/exports/scores.csv").status_code == 403
    assert client.get("/exports/").status_code == 403
