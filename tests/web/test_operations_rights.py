"""The client's data rights (issue 9): export everything, erase, and the retention purge."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client as DjangoClient
from typer.testing import CliRunner

from bordin.cli import app
from bordin.web.alerts.models import Alert
from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Client, Episode, Goal, Response, Session
from bordin.web.operations.models import ClinicSettings
from tests.web.helpers import login_verified, record_checkin, totp_code, totp_device

pytestmark = pytest.mark.django_db

NAME = "Zephyrine Quartermaine"
FREE_TEXT = "my neighbour Bartholomew frightens me"
GOAL = "Walk to the lighthouse every Sunday"
EMAIL = "zephyrine@example.org"


@pytest.fixture
def person(clinic: Any, owner: Any) -> Client:
    """A client with contact details, a goal, a check-in with free text and an alert."""
    client = Client.objects.create(
        clinic=clinic, therapist=owner, display_name=NAME, contact_email=EMAIL
    )
    from bordin.web.operations.models import ClientEmailDigest

    ClientEmailDigest.store(client)
    episode = Episode.objects.create(client=client, start=date.today() - timedelta(days=30))
    Goal.objects.create(episode=episode, text=GOAL)
    session = Session.objects.create(episode=episode, number=1, date=date.today())
    record_checkin(session, {"goals": 7, "tasks": 7, "bond": 7, "overall": 7})
    Response.objects.filter(session=session).update(free_text=FREE_TEXT)
    Alert.objects.create(
        clinic=clinic, client=client, session=session, kind="rupture", note=FREE_TEXT,
        dedupe_key="k",
    )  # fmt: skip
    return client


def raw_database_text() -> str:
    """Every row of every table, as stored (ciphertext stays ciphertext)."""
    out = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            out.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(out)


def decrypted_text() -> str:
    """Every free-text value as the application reads it (decrypted)."""
    values = [c.display_name + c.contact_email for c in Client.objects.all()]
    values += [r.free_text for r in Response.objects.all()]
    values += [g.text for g in Goal.objects.all()]
    values += [a.note + a.detail for a in Alert.objects.all()]
    values += [e.detail for e in AuditEvent.objects.all()]
    return "\n".join(values)


def test_export_holds_everything_decrypted(login: Any, admin: Any, person: Client) -> None:
    response = login(admin).get(f"/clients/{person.pk}/export/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == [f"client-{person.pk}.json", f"client-{person.pk}.pdf"]
    data = json.loads(archive.read(f"client-{person.pk}.json"))
    text = json.dumps(data)
    for expected in (NAME, EMAIL, FREE_TEXT, GOAL):
        assert expected in text
    assert {
        "clinic.Episode",
        "clinic.Session",
        "clinic.Response",
        "clinic.Goal",
        "alerts.Alert",
    } <= set(data["records"])
    assert any(e["action"] == "export" for e in data["audit_events"])
    assert "token_hash" not in text
    assert archive.read(f"client-{person.pk}.pdf").startswith(b"%PDF")


def _erase(admin: Any, person: Client, **data: str) -> Any:
    c = login_verified(DjangoClient(), admin)
    return c, c.post(f"/clients/{person.pk}/erase/", data)


def test_erasure_needs_typed_confirmation_and_a_recent_second_factor(
    admin: Any, person: Client
) -> None:
    c, no_confirm = _erase(admin, person, confirm="erase", code=totp_code(totp_device(admin)))
    assert no_confirm.status_code == 400 and "Type ERASE" in no_confirm.content.decode()
    stale = c.post(f"/clients/{person.pk}/erase/", {"confirm": "ERASE"})
    assert stale.status_code == 400 and "last 10 minutes" in stale.content.decode()
    assert Client.objects.filter(display_name=NAME).exists()


def test_erasure_deletes_everything_by_default(admin: Any, owner: Any, person: Client) -> None:
    pk = person.pk
    c, response = _erase(admin, person, confirm="ERASE", code=totp_code(totp_device(admin)))
    assert response.status_code == 302
    assert not Client.objects.filter(pk=pk).exists() and not Response.objects.exists()
    raw, plain = raw_database_text(), decrypted_text()
    for secret in (NAME, FREE_TEXT, GOAL, EMAIL, "Zephyrine"):
        assert secret not in raw and secret not in plain
    event = AuditEvent.objects.filter(client_id=pk, detail__startswith="erased").get()
    assert "all records" in event.detail
    assert c.get(f"/clients/{pk}/").status_code == 404


def test_erasure_keeps_de_identified_scores_when_the_clinic_says_so(
    admin: Any, person: Client
) -> None:
    ClinicSettings.objects.create(clinic=person.clinic, keep_scores_on_erasure=True)
    totals = sorted(Response.objects.values_list("total", flat=True))
    c, response = _erase(admin, person, confirm="ERASE", code=totp_code(totp_device(admin)))
    assert response.status_code == 302
    assert sorted(Response.objects.values_list("total", flat=True)) == totals
    raw, plain = raw_database_text(), decrypted_text()
    for secret in (NAME, FREE_TEXT, GOAL, EMAIL):
        assert secret not in raw and secret not in plain
    person.refresh_from_db()
    assert person.display_name == f"Erased client {person.pk}" and person.archived_at
    for url in ("/", f"/clients/{person.pk}/", "/alerts/", "/exports/scores.csv"):
        body = c.get(url).content.decode()
        assert NAME not in body and FREE_TEXT not in body
    export = c.get(f"/clients/{person.pk}/export/")
    data = zipfile.ZipFile(io.BytesIO(export.content)).read(f"client-{person.pk}.json").decode()
    assert NAME not in data and FREE_TEXT not in data and GOAL not in data


def test_purge_applies_the_retention_setting(clinic: Any, person: Client) -> None:
    runner = CliRunner()
    old = Episode.objects.get(client=person)
    Episode.objects.filter(pk=old.pk).update(
        status="closed", start=date(2015, 1, 5), end=date(2016, 3, 1), ending_reason="planned"
    )
    nothing = runner.invoke(app, ["purge", "--dry-run"])
    assert nothing.exit_code == 0 and "0 client(s) would be erased" in nothing.output
    ClinicSettings.objects.update_or_create(clinic=clinic, defaults={"retention_years": 8})
    dry = runner.invoke(app, ["purge", "--dry-run"])
    assert f"client {person.pk} would be erased" in dry.output
    assert Client.objects.filter(pk=person.pk).exists()
    done = runner.invoke(app, ["purge"])
    assert done.exit_code == 0 and f"client {person.pk} erased" in done.output
    assert not Client.objects.filter(pk=person.pk).exists()
    assert AuditEvent.objects.filter(client_id=person.pk, detail__contains="retention").exists()


def test_purge_keeps_clients_with_an_open_or_recent_episode(
    clinic: Any, person: Client, owner: Any
) -> None:
    ClinicSettings.objects.create(clinic=clinic, retention_years=1)
    recent = Client.objects.create(clinic=clinic, therapist=owner, display_name="Recent")
    Episode.objects.create(
        client=recent, start=date.today() - timedelta(days=90), end=date.today(), status="closed"
    )
    result = CliRunner().invoke(app, ["purge"])
    assert "0 client(s) erased" in result.output
    assert Client.objects.count() == 2


def test_clinic_settings_page(login: Any, admin: Any) -> None:
    c = login(admin)
    bad = c.post("/clinic/settings/", {"retention_years": "-1", "audit_retention_years": "0"})
    assert bad.status_code == 400
    c.post(
        "/clinic/settings/",
        {"retention_years": "7", "keep_scores_on_erasure": "on", "audit_retention_years": "10"},
    )
    row = ClinicSettings.objects.get(clinic=admin.staff.clinic)
    assert (row.retention_years, row.keep_scores_on_erasure) == (7, True)
