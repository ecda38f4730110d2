"""The audit log: every read and write of client data is recorded, and nothing can change it."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from bordin.web.alerts.models import Alert
from bordin.web.audit.models import AppendOnlyError, AuditEvent
from bordin.web.checkins.models import CheckinLink
from tests.web.conftest import PASSWORD
from tests.web.helpers import checkin_post, record_checkin

pytestmark = pytest.mark.django_db

UA = "Mozilla/5.0 (test) " + "x" * 400


@pytest.fixture
def world(client_record: Any, add_session: Any, goals: list[Any]) -> dict[str, Any]:
    session = add_session(days_ago=2)
    record_checkin(session, {"goals": 8, "tasks": 8, "bond": 8, "overall": 8})
    alert = Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=session,
        kind="rupture",
        dedupe_key="audit-rupture",
    )
    return {"client": client_record, "session": session, "alert": alert, "goals": goals}


def events(**filters: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(**filters).order_by("pk"))


def only(**filters: Any) -> AuditEvent:
    found = events(**filters)
    assert len(found) == 1, found
    return found[0]


def assert_who(e: AuditEvent, user: Any, role: str) -> None:
    assert e.user_id == user.pk
    assert e.username == user.username
    assert e.role == role
    assert e.clinic_id == user.staff.clinic_id
    assert e.ip_address == "127.0.0.1"
    assert e.user_agent == UA[:300]
    assert e.at is not None


# --- recording ----------------------------------------------------------------------------------


def test_client_page_view_is_a_read(client: Any, owner: Any, world: dict[str, Any]) -> None:
    c = world["client"]
    client.force_login(owner)
    assert client.get(f"/clients/{c.pk}/", HTTP_USER_AGENT=UA).status_code == 200
    e = only(action="read", object_type="client")
    assert_who(e, owner, "therapist")
    assert (e.object_id, e.client_id, e.path) == (str(c.pk), c.pk, f"/clients/{c.pk}/")


def test_caseload_records_one_read_per_client_listed(
    client: Any, admin: Any, world: dict[str, Any], colleague: Any
) -> None:
    from bordin.web.clinic.models import Client

    other = Client.objects.create(clinic=admin.staff.clinic, therapist=colleague, display_name="B")
    client.force_login(admin)
    client.get("/", HTTP_USER_AGENT=UA)
    reads = events(action="read", object_type="client", detail="caseload")
    assert sorted(e.client_id for e in reads) == sorted([world["client"].pk, other.pk])
    for e in reads:
        assert_who(e, admin, "clinic_admin")
        assert e.path == "/"


def test_alert_list_records_each_alert_shown(
    client: Any, owner: Any, world: dict[str, Any]
) -> None:
    client.force_login(owner)
    client.get("/alerts/", HTTP_USER_AGENT=UA)
    e = only(action="read", object_type="alert")
    assert (e.object_id, e.client_id) == (str(world["alert"].pk), world["client"].pk)
    assert_who(e, owner, "therapist")


def test_alert_transitions(client: Any, owner: Any, world: dict[str, Any]) -> None:
    a = world["alert"]
    client.force_login(owner)
    client.post(f"/alerts/{a.pk}/acknowledge/", HTTP_USER_AGENT=UA)
    client.post(f"/alerts/{a.pk}/resolve/", {"note": "Talked."}, HTTP_USER_AGENT=UA)
    ack, res = events(action="update", object_type="alert")
    assert (ack.object_id, ack.client_id, ack.detail) == (
        str(a.pk),
        a.client_id,
        "rupture acknowledged",
    )
    assert res.detail == "rupture resolved"
    assert res.path == f"/alerts/{a.pk}/resolve/"
    assert_who(res, owner, "therapist")


def test_refused_transition_records_no_update(
    client: Any, owner: Any, world: dict[str, Any]
) -> None:
    client.force_login(owner)
    response = client.post(f"/alerts/{world['alert'].pk}/resolve/", {"note": "Too early."})
    assert response.status_code == 400
    assert events(action="update") == []


def test_therapist_rating_create_then_update(
    client: Any, owner: Any, world: dict[str, Any]
) -> None:
    c, s = world["client"], world["session"]
    client.force_login(owner)
    data = {"session": s.pk, "goals": "7", "tasks": "7", "bond": "7"}
    client.post(f"/clients/{c.pk}/rating/", data, HTTP_USER_AGENT=UA)
    client.post(f"/clients/{c.pk}/rating/", {**data, "bond": "9"}, HTTP_USER_AGENT=UA)
    first, second = events(object_type="therapist_rating")
    assert (first.action, second.action) == ("create", "update")
    assert first.object_id == second.object_id
    assert first.client_id == c.pk
    assert first.detail == f"session {s.number}"
    assert_who(second, owner, "therapist")


def test_invalid_rating_is_recorded_as_the_read_it_is(
    client: Any, owner: Any, world: dict[str, Any]
) -> None:
    c = world["client"]
    client.force_login(owner)
    response = client.post(f"/clients/{c.pk}/rating/", {"session": world["session"].pk})
    assert response.status_code == 400
    assert events(object_type="therapist_rating") == []
    assert only(action="read").client_id == c.pk


def test_session_recording_and_its_link(client: Any, owner: Any, world: dict[str, Any]) -> None:
    c = world["client"]
    client.force_login(owner)
    client.post(
        f"/clients/{c.pk}/sessions/",
        {"date": "2026-01-05", "attendance": "attended"},
        HTTP_USER_AGENT=UA,
    )
    session_event = only(action="create", object_type="session")
    link_event = only(action="create", object_type="checkin_link")
    assert session_event.client_id == link_event.client_id == c.pk
    assert link_event.object_id == str(CheckinLink.objects.get().pk)
    assert_who(session_event, owner, "therapist")


def test_link_issue_and_revoke(
    client: Any, admin: Any, world: dict[str, Any], add_session: Any
) -> None:
    c = world["client"]
    add_session(days_ago=0)
    client.force_login(admin)
    client.post(f"/clients/{c.pk}/links/", HTTP_USER_AGENT=UA)
    link = CheckinLink.objects.get()
    client.post(f"/clients/{c.pk}/links/{link.pk}/revoke/", HTTP_USER_AGENT=UA)
    issued = only(action="create", object_type="checkin_link")
    revoked = only(action="update", object_type="checkin_link")
    assert issued.object_id == revoked.object_id == str(link.pk)
    assert revoked.detail == "revoked"
    assert_who(revoked, admin, "clinic_admin")


def test_checkin_submission_actor_is_the_link(
    client: Any, owner: Any, world: dict[str, Any], add_session: Any
) -> None:
    session = add_session(days_ago=0)
    link, token = CheckinLink.issue(session, created_by=owner)
    client.get(f"/c/{token}")
    response = client.post("/c/", checkin_post(world["goals"]), HTTP_USER_AGENT=UA)
    assert response.status_code == 200
    e = only(action="create", object_type="checkin")
    assert (e.user_id, e.username, e.role) == (None, "", "checkin_link")
    assert e.checkin_link_id == link.pk
    assert (e.client_id, e.clinic_id) == (world["client"].pk, world["client"].clinic_id)
    assert e.path == "/c/"
    assert e.ip_address == "127.0.0.1"
    # A repeat of the same submission stores nothing new and records nothing new.
    client.post("/c/", checkin_post(world["goals"]))
    assert len(events(object_type="checkin")) == 1
    assert not AuditEvent.objects.filter(path__contains=token).exists()


def test_opening_the_checkin_form_is_a_read_by_the_link(
    client: Any, owner: Any, world: dict[str, Any], add_session: Any
) -> None:
    link, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    client.get(f"/c/{token}")
    assert client.get("/c/").status_code == 200
    e = only(action="read", object_type="checkin")
    assert (e.user_id, e.role, e.checkin_link_id) == (None, "checkin_link", link.pk)
    assert e.client_id == world["client"].pk and e.path == "/c/"


def test_denied_lookup_is_recorded(client: Any, colleague: Any, world: dict[str, Any]) -> None:
    client.force_login(colleague)
    assert client.get(f"/clients/{world['client'].pk}/").status_code == 404
    e = only(action="denied")
    assert (e.object_type, e.object_id, e.user_id) == (
        "client",
        str(world["client"].pk),
        colleague.pk,
    )
    assert e.client_id is None  # the refused record is not confirmed to exist


def test_exports_are_recorded(client: Any, admin: Any, world: dict[str, Any]) -> None:
    client.force_login(admin)
    client.get("/exports/scores.csv", HTTP_USER_AGENT=UA)
    e = only(action="export", object_type="scores_export")
    assert_who(e, admin, "clinic_admin")
    assert e.detail == "scores.csv, 1 rows"
    b"".join(client.get("/audit/export.csv").streaming_content)
    only(action="export", object_type="audit_log")


def test_login_failed_login_and_logout(client: Any, owner: Any) -> None:
    client.post("/login/", {"username": "owner", "password": "wrong"}, HTTP_USER_AGENT=UA)
    client.post("/login/", {"username": "nobody", "password": "wrong"})
    client.post("/login/", {"username": "owner", "password": PASSWORD}, HTTP_USER_AGENT=UA)
    client.post("/logout/")
    failed, unknown = events(action="login_failed")
    assert (failed.username, failed.user_id, failed.clinic_id) == (
        "owner",
        owner.pk,
        owner.staff.clinic_id,
    )
    assert failed.path == "/login/"
    assert (unknown.username, unknown.user_id, unknown.clinic_id) == ("nobody", None, None)
    assert_who(only(action="login"), owner, "therapist")
    assert only(action="logout").user_id == owner.pk


def test_forwarded_for_only_when_trusted(
    client: Any, owner: Any, world: dict[str, Any], settings: Any
) -> None:
    client.force_login(owner)
    url = f"/clients/{world['client'].pk}/"
    hops = "203.0.113.7, 10.0.0.1"
    settings.BORDIN_TRUST_X_FORWARDED_FOR = False
    # Straight from the internet (from a nearby proxy it would be refused: tests/web/test_proxy).
    client.get(url, HTTP_X_FORWARDED_FOR=hops, REMOTE_ADDR="93.184.216.34")
    settings.BORDIN_TRUST_X_FORWARDED_FOR = True
    client.get(url, HTTP_X_FORWARDED_FOR=hops)
    client.get(url, HTTP_X_FORWARDED_FOR="not-an-address")
    untrusted, trusted, garbage = events(action="read")
    assert untrusted.ip_address == "93.184.216.34"
    assert trusted.ip_address == "203.0.113.7"
    assert garbage.ip_address is None


# --- viewing ------------------------------------------------------------------------------------


def test_admin_sees_and_filters_own_clinic_only(
    client: Any, owner: Any, admin: Any, outsider: Any, world: dict[str, Any]
) -> None:
    c = world["client"]
    client.force_login(owner)
    client.get(f"/clients/{c.pk}/")
    client.force_login(outsider)
    client.get("/")  # the other clinic's own events
    client.force_login(admin)
    html = client.get(f"/audit/?client={c.pk}&user=owner").content.decode()
    assert html.count("<tr data-event-id=") == 1
    assert ">owner<" in html
    all_html = client.get("/audit/").content.decode()
    assert "outsider" not in all_html
    body = b"".join(client.get("/audit/export.csv?action=read").streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert {r["username"] for r in rows} == {"owner", "clinic-admin"}
    assert all(r["action"] == "read" for r in rows)
    assert "outsider" not in body


def test_audit_pages_are_for_clinic_admins_only(
    client: Any, owner: Any, supervisor: Any, researcher: Any
) -> None:
    for user in (owner, supervisor, researcher):
        client.force_login(user)
        assert client.get("/audit/").status_code == 403
        assert client.get("/audit/export.csv").status_code == 403


def test_audit_pagination_and_bad_filter(client: Any, admin: Any, world: dict[str, Any]) -> None:
    from bordin.web.audit import log

    log.record_many(
        _request(admin), "read", "client", [(world["client"].pk, world["client"].pk)] * 120
    )
    client.force_login(admin)
    first = client.get("/audit/").content.decode()
    assert first.count("<tr data-event-id=") == 50
    assert "Page 1 of 3" in first
    assert client.get("/audit/?page=3").content.decode().count("<tr data-event-id=") > 0
    assert "No events." in client.get("/audit/?start=not-a-date").content.decode()


def test_csv_cells_cannot_become_formulas(client: Any, admin: Any, clinic: Any) -> None:
    from tests.web.conftest import make_staff

    make_staff("=HYPERLINK(1)", clinic)
    client.post("/login/", {"username": "=HYPERLINK(1)", "password": "x"})
    client.force_login(admin)
    body = b"".join(client.get("/audit/export.csv").streaming_content).decode()
    assert "'=HYPERLINK(1)" in body


def _request(user: Any) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = user
    return request


# --- protection ---------------------------------------------------------------------------------


@pytest.fixture
def stored(owner: Any) -> AuditEvent:
    from bordin.web.audit import log

    return log.record(_request(owner), "read", object_type="client", object_id=1, client_id=1)


def test_orm_refuses_update_and_delete(stored: AuditEvent) -> None:
    stored.username = "someone-else"
    with pytest.raises(AppendOnlyError):
        stored.save()
    with pytest.raises(AppendOnlyError):
        stored.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=stored.pk).update(username="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=stored.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([stored], ["username"])
    assert AuditEvent.objects.get(pk=stored.pk).username == "owner"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET username = 'forged'",
        "DELETE FROM audit_auditevent",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ],
)
def test_database_refuses_raw_update_and_delete(stored: AuditEvent, sql: str) -> None:
    params = [stored.pk] if "%s" in sql else []
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)
    row = AuditEvent.objects.get(pk=stored.pk)
    assert row.username == "owner"


def test_database_refuses_truncate_on_postgres(stored: AuditEvent) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("TRUNCATE is PostgreSQL's")
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.filter(pk=stored.pk).exists()


def test_triggers_exist() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_auditevent'::regclass "
                "AND NOT tgisinternal"
            )
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'audit_auditevent'"
            )
        names = {row[0] for row in cursor.fetchall()}
    assert names
    assert all(name.startswith("audit_auditevent_no_") for name in names)


def test_no_edit_path_in_urls() -> None:
    """Only the list and the export touch the audit log, and both are GET-only."""
    from django.urls import get_resolver

    names = {p.name for p in get_resolver().url_patterns if "audit" in str(p.pattern)}
    assert names == {"audit", "audit-export"}


def test_csv_export_quotes_every_cell_and_neutralises_after_separators(
    client: Any, admin: Any
) -> None:
    client.force_login(admin)
    client.get("/audit/", HTTP_USER_AGENT="Mozilla/5.0;=1+2;@SUM(1+1)")
    body = b"".join(client.get("/audit/export.csv").streaming_content).decode()
    assert "\"Mozilla/5.0;'=1+2;'@SUM(1+1)\"" in body
    header, first = body.splitlines()[:2]
    assert header.startswith('"at","user_id"')
    assert first.startswith('"') and first.endswith('"') and first.count('","') == 12
    scores = client.get("/exports/scores.csv").content.decode()
    assert scores.startswith('"client_id","session","measure","score","date"')
