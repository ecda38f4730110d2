"""Tamper evidence of the audit log: no ``INSERT OR REPLACE`` on SQLite, a verified hash chain."""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from typer.testing import CliRunner

from bordin.cli import app
from bordin.web.audit import log
from bordin.web.audit.models import (
    NEWEST_HASH_SQL,
    AppendOnlyError,
    AuditAnchor,
    AuditEvent,
    chain_hash,
    verify_chain,
)
from bordin.web.operations.models import ClinicSettings
from tests.web.helpers import bordin

SQLITE = os.environ.get("BORDIN_TEST_DB", "sqlite") == "sqlite"


@pytest.fixture
def stored(owner: Any) -> list[AuditEvent]:
    return [
        log.record(None, log.Action.READ, user=owner, object_type="client", object_id=n)
        for n in range(3)
    ]


def test_every_event_is_chained_to_the_one_before(stored: list[AuditEvent]) -> None:
    rows = list(AuditEvent.objects.order_by("pk"))
    previous = ""
    for row in rows:
        assert row.chain_hash == chain_hash(previous, row)
        previous = row.chain_hash
    assert verify_chain() == (len(rows), None)


def test_the_written_out_newest_hash_query_reads_what_the_orm_reads(
    stored: list[AuditEvent],
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(NEWEST_HASH_SQL)
        (newest,) = cursor.fetchone()
    assert newest == AuditEvent.objects.order_by("-pk").values_list("chain_hash", flat=True)[0]
    assert newest == stored[-1].chain_hash


def test_bulk_inserts_are_chained(owner: Any, rf: Any) -> None:
    request = rf.get("/")
    request.user = owner
    log.record_many(request, log.Action.READ, "client", [(1, 1), (2, 2)])
    assert verify_chain()[1] is None


def _tamper(sql: str, params: list[Any]) -> None:
    """What someone with the database's admin rights could do: lift the trigger, edit a row."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_no_update_delete"
            )
        else:
            cursor.execute("DROP TRIGGER audit_auditevent_no_update")
            cursor.execute("DROP TRIGGER audit_auditevent_no_delete")
        cursor.execute(sql, params)


def test_an_edited_event_breaks_the_chain_there(stored: list[AuditEvent]) -> None:
    _tamper("UPDATE audit_auditevent SET username = 'someone' WHERE id = %s", [stored[1].pk])
    checked, bad = verify_chain()
    assert bad is not None
    assert (checked, bad.pk) == (1, stored[1].pk)


def test_a_removed_event_breaks_the_chain_at_the_next(stored: list[AuditEvent]) -> None:
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [stored[1].pk])
    bad = verify_chain()[1]
    assert bad is not None
    assert bad.pk == stored[2].pk


@pytest.mark.skipif(connection.vendor != "sqlite", reason="INSERT OR REPLACE is SQLite's")
def test_insert_or_replace_cannot_rewrite_an_event(stored: list[AuditEvent]) -> None:
    target = stored[0]
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT OR REPLACE INTO audit_auditevent (id, at, username, role, action, "
            "object_type, object_id, detail, path, user_agent, chain_hash) "
            "VALUES (%s, '2020-01-01 00:00:00', 'forged', '', 'read', '', '', '', '', '', '')",
            [target.pk],
        )
    assert AuditEvent.objects.get(pk=target.pk).username == "owner"


# ------------------------------------------------------------------- `bordin audit verify`


@pytest.mark.skipif(not SQLITE, reason="drives the CLI on a SQLite file")
def test_bordin_audit_verify_names_the_first_bad_event(tmp_path: Path) -> None:
    db = tmp_path / "bordin.sqlite3"
    assert bordin(db, "manage", "migrate", "--verbosity", "0").returncode == 0
    record = (
        "from bordin.web.audit import log\n"
        "for n in range(4): log.record(None, 'read', object_type='client', object_id=n)\n"
    )
    assert bordin(db, "manage", "shell", "-c", record).returncode == 0
    ok = bordin(db, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "4 events verified" in ok.stdout
    with sqlite3.connect(db) as con:
        con.execute("DROP TRIGGER audit_auditevent_no_update")
        third = con.execute("SELECT id FROM audit_auditevent ORDER BY id LIMIT 1 OFFSET 2")
        (pk,) = third.fetchone()
        con.execute("UPDATE audit_auditevent SET detail = 'nothing to see' WHERE id = ?", [pk])
    bad = bordin(db, "audit", "verify")
    assert bad.returncode == 1
    assert f"event #{pk}" in bad.stderr
    assert "2 events before it verified" in bad.stderr


# ------------------------------------------------------- retention: `bordin purge` (issue 9)


def _event(clinic_id: int, years_ago: float, name: str) -> AuditEvent:
    at = timezone.now() - timedelta(days=365 * years_ago)
    row = AuditEvent(at=at, clinic_id=clinic_id, action="read", username=name)
    row.save()
    return row


def _refused(sql: str, params: list[Any]) -> None:
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


@pytest.fixture
def aged(clinic: Any, other_clinic: Any) -> dict[str, AuditEvent]:
    """Old and new events of two clinics, interleaved; the newest ones are old (the tail)."""
    names = [
        ("a_old1", clinic, 6),
        ("b_old", other_clinic, 6),
        ("a_old2", clinic, 3),
        ("a_new", clinic, 0),
        ("b_new", other_clinic, 0),
        ("a_old3", clinic, 3),
        ("a_old4", clinic, 6),
    ]
    return {name: _event(where.pk, years, name) for name, where, years in names}


def test_purge_removes_only_old_events_of_clinics_with_a_retention(
    aged: dict[str, AuditEvent], clinic: Any, other_clinic: Any
) -> None:
    runner = CliRunner()
    ClinicSettings.objects.create(clinic=clinic, audit_retention_years=5)
    ClinicSettings.objects.create(clinic=other_clinic, audit_retention_years=0)
    before = AuditEvent.objects.count()
    dry = runner.invoke(app, ["purge", "--dry-run"])
    assert dry.exit_code == 0 and "2 audit event(s) older than the audit retention would be" in (
        dry.output
    )
    assert AuditEvent.objects.count() == before

    done = runner.invoke(app, ["purge"])
    assert done.exit_code == 0 and "2 audit event(s) older than the audit retention removed" in (
        done.output
    )
    left = set(AuditEvent.objects.values_list("username", flat=True))
    assert {"a_old1", "a_old4"}.isdisjoint(left)
    assert {"b_old", "a_old2", "a_new", "b_new", "a_old3"} <= left
    purged = AuditEvent.objects.get(action="purge")
    assert purged.clinic_id == clinic.pk
    assert "removed 2 audit events dated before" in purged.detail
    assert f"up to #{aged['a_old4'].pk}" in purged.detail
    assert "a_old" not in purged.detail  # never the content
    assert verify_chain() == (AuditEvent.objects.count(), None)

    # A shorter retention later: the second purge chains on from the first one's anchors.
    ClinicSettings.objects.filter(clinic=clinic).update(audit_retention_years=2)
    runner.invoke(app, ["purge"])
    left = set(AuditEvent.objects.values_list("username", flat=True))
    assert {"a_old2", "a_old3"}.isdisjoint(left) and {"b_old", "a_new", "b_new"} <= left
    assert AuditEvent.objects.filter(action="purge").count() == 2
    assert verify_chain() == (AuditEvent.objects.count(), None)


def test_nothing_else_can_delete_or_rewrite_events(
    aged: dict[str, AuditEvent], clinic: Any
) -> None:
    ClinicSettings.objects.create(clinic=clinic, audit_retention_years=5)
    CliRunner().invoke(app, ["purge"])
    # Later in the same transaction the permit is gone: raw statements are refused again.
    kept = aged["b_old"].pk
    _refused("DELETE FROM audit_auditevent WHERE id = %s", [kept])
    _refused("UPDATE audit_auditevent SET username = 'x' WHERE id = %s", [kept])
    _refused("DELETE FROM audit_auditanchor", [])
    _refused("UPDATE audit_auditanchor SET previous_hash = ''", [])
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM audit_purgepermit")
            assert cursor.fetchone() == (0,)
    with pytest.raises(AppendOnlyError):
        AuditAnchor.objects.all().delete()
    assert AuditEvent.objects.filter(pk=kept).exists()


def test_verify_still_detects_tampering_after_a_purge(
    aged: dict[str, AuditEvent], clinic: Any
) -> None:
    ClinicSettings.objects.create(clinic=clinic, audit_retention_years=5)
    CliRunner().invoke(app, ["purge"])
    assert verify_chain()[1] is None
    # b_old follows a purged event (a_old1): its anchor must not hide an edit of it.
    _tamper("UPDATE audit_auditevent SET detail = 'edited' WHERE id = %s", [aged["b_old"].pk])
    bad = verify_chain()[1]
    assert bad is not None and bad.pk == aged["b_old"].pk


def test_a_removed_event_after_a_purge_breaks_the_chain(
    aged: dict[str, AuditEvent], clinic: Any
) -> None:
    ClinicSettings.objects.create(clinic=clinic, audit_retention_years=5)
    CliRunner().invoke(app, ["purge"])
    _tamper("DELETE FROM audit_auditevent WHERE id = %s", [aged["a_new"].pk])
    bad = verify_chain()[1]
    assert bad is not None and bad.pk == aged["b_new"].pk


@pytest.mark.skipif(not SQLITE, reason="drives the CLI on a SQLite file")
def test_bordin_purge_then_audit_verify(tmp_path: Path) -> None:
    db = tmp_path / "bordin.sqlite3"
    assert bordin(db, "manage", "migrate", "--verbosity", "0").returncode == 0
    setup = (
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from bordin.web.audit.models import AuditEvent\n"
        "from bordin.web.clinic.models import Clinic\n"
        "from bordin.web.operations.models import ClinicSettings\n"
        "c = Clinic.objects.create(name='Purged')\n"
        "ClinicSettings.objects.create(clinic=c, audit_retention_years=1)\n"
        "old = timezone.now() - timedelta(days=800)\n"
        "for n in range(3): AuditEvent(at=old, clinic_id=c.pk, action='read').save()\n"
        "AuditEvent(clinic_id=c.pk, action='read').save()\n"
    )
    made = bordin(db, "manage", "shell", "-c", setup)
    assert made.returncode == 0, made.stderr
    dry = bordin(db, "purge", "--dry-run")
    assert "Purged: 3 audit event(s) older than the audit retention would be removed" in dry.stdout
    done = bordin(db, "purge")
    assert done.returncode == 0, done.stderr
    assert "Purged: 3 audit event(s) older than the audit retention removed" in done.stdout
    ok = bordin(db, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert "2 events verified" in ok.stdout  # the recent one and the purge's own event
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM audit_purgepermit").fetchone() == (0,)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute("DELETE FROM audit_auditevent")
