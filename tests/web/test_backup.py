"""Backup and restore of the configured database (``bordin.web.backup``), on both databases.

SQLite: the in-memory test database is backed up to a file, changed, and restored in place.
PostgreSQL: the test database is dumped and restored into a separate database
(``bordin_restore_test_<pid>``), read back with a direct psycopg connection; it is restored
twice, the second time over changed data, to exercise ``--clean``.
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from bordin.web import backup as backup_module
from bordin.web.alerts.models import Alert
from bordin.web.backup import BackupError, backup, restore
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Client, GoalRating, Response
from tests.web.helpers import record_checkin, record_therapist_rating

IS_PG = connection.vendor == "postgresql"
SQLITE_ENGINE = "django.db.backends.sqlite3"
PG_ENGINE = "django.db.backends.postgresql"

pytestmark = pytest.mark.django_db(transaction=True)


# ------------------------------------------------------------------------------------ helpers


def data_tables() -> list[str]:
    """Every table of a Django model, in a fixed order."""
    return sorted(connection.introspection.django_table_names(only_existing=True))


def rows_of(cursor: Any, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in tables:
        cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
        out[table] = sorted((tuple(r) for r in cursor.fetchall()), key=repr)
    return out


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    with connection.cursor() as cursor:
        return rows_of(cursor, data_tables())


@pytest.fixture
def clinic_data(
    client_record: Any, goals: list[Any], add_session: Callable[..., Any], owner: Any
) -> dict[str, Any]:
    """Clients, sessions, client and therapist responses, goal ratings, alerts and links."""
    first = add_session(days_ago=21)
    second = add_session(days_ago=14)
    third = add_session(days_ago=7)
    record_checkin(
        first,
        {"goals": 9, "tasks": 9, "bond": 9, "overall": 9},
        {"mood": 5, "daily": 6, "connection": 5, "coping": 6, "safety": 0},
    )
    record_checkin(second, {"goals": 5, "tasks": 4, "bond": 6, "overall": 5})
    alliance = Response.objects.get(session=first, instrument__code="alliance")
    for goal in goals:
        GoalRating.objects.create(session=first, response=alliance, goal=goal, rating=7)
    record_therapist_rating(second, {"goals": 9, "tasks": 9, "bond": 9}, owner)
    Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=second,
        kind="rupture",
        detail="Alliance fell 4 points — “tasks” fell most.",
        dedupe_key=f"rupture:c{client_record.pk}:s{second.pk}",
    )
    Alert.objects.create(
        clinic=client_record.clinic,
        client=client_record,
        session=first,
        kind="risk",
        status="resolved",
        note="Called the client; safe. ✓",
        resolved_at=timezone.now(),
        resolved_by=owner,
        dedupe_key=f"risk:c{client_record.pk}:s{first.pk}",
    )
    CheckinLink.issue(third, created_by=owner)
    other = Client.objects.create(
        clinic=client_record.clinic, therapist=owner, display_name="Zoë O'Brien"
    )
    return {"client": client_record, "other": other}


def change_everything() -> None:
    """Edit, delete and add records after the backup was taken."""
    Alert.objects.filter(status="new").update(status="acknowledged")
    GoalRating.objects.all().delete()
    Response.objects.filter(respondent="therapist").delete()
    CheckinLink.objects.all().delete()
    Client.objects.filter(display_name="Zoë O'Brien").update(display_name="Renamed")
    client = Client.objects.first()
    assert client is not None
    Client.objects.create(clinic=client.clinic, therapist=client.therapist, display_name="New")


def assert_has_clinic_data(rows: dict[str, list[tuple[Any, ...]]]) -> None:
    assert len(rows["clinic_client"]) == 2
    assert len(rows["clinic_response"]) == 4  # 2 + 1 client responses, 1 therapist rating
    assert len(rows["clinic_goalrating"]) == 2
    assert len(rows["alerts_alert"]) == 2
    assert len(rows["checkins_checkinlink"]) == 1


# ----------------------------------------------------------------------- round trip: SQLite


@pytest.mark.skipif(IS_PG, reason="SQLite round trip (PostgreSQL has its own test)")
def test_sqlite_backup_change_restore_finds_every_record(
    clinic_data: dict[str, Any], tmp_path: Path
) -> None:
    before = snapshot()
    assert_has_clinic_data(before)
    written = backup(tmp_path)
    assert written.parent == tmp_path
    assert written.name.startswith("bordin-") and written.suffix == ".sqlite3"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600  # health data: owner only
    assert [p.name for p in tmp_path.iterdir()] == [written.name]  # no temp files left

    change_everything()
    assert snapshot() != before

    restore(written)
    assert snapshot() == before
    # The ORM sees the restored data too.
    assert Client.objects.filter(display_name="Zoë O'Brien").exists()
    assert Response.objects.filter(respondent="therapist").count() == 1
    assert Alert.objects.filter(status="new").count() == 1


@pytest.mark.skipif(IS_PG, reason="SQLite file databases")
def test_sqlite_file_database_snapshot_is_consistent_while_app_writes(
    clinic_data: dict[str, Any], tmp_path: Path
) -> None:
    """A file database in WAL mode: backups taken during writes see whole transactions only,
    and a restore while another connection is open applies cleanly."""
    live = backup(tmp_path / "live.sqlite3")  # a file copy of the test data to act as the app DB
    config = {"ENGINE": SQLITE_ENGINE, "NAME": str(live)}
    with sqlite3.connect(live) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE pairs (id INTEGER PRIMARY KEY, n INTEGER)")
    stop = threading.Event()
    writes = 0

    def writer() -> None:
        nonlocal writes
        conn = sqlite3.connect(live, timeout=30, isolation_level=None)
        try:
            while not stop.is_set():
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO pairs (n) VALUES (1)")
                conn.execute("INSERT INTO pairs (n) VALUES (2)")
                conn.execute("COMMIT")
                writes += 1
        finally:
            conn.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    copies = []
    try:
        deadline = time.monotonic() + 5
        while len(copies) < 5 and time.monotonic() < deadline:
            copies.append(backup(tmp_path / f"copy-{len(copies)}.sqlite3", settings_dict=config))
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert writes > 0
    assert len(copies) == 5
    for copy in copies:
        with sqlite3.connect(copy) as conn:
            (count,) = conn.execute("SELECT count(*) FROM pairs").fetchone()
            assert count % 2 == 0  # never half a transaction
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert not Path(f"{copy}-wal").exists()

    # Restore the first copy while a reader holds the live database open.
    reader = sqlite3.connect(live)
    try:
        (expected,) = sqlite3.connect(copies[0]).execute("SELECT count(*) FROM pairs").fetchone()
        restore(copies[0], settings_dict=config)
        assert reader.execute("SELECT count(*) FROM pairs").fetchone() == (expected,)
        assert reader.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert reader.execute("SELECT count(*) FROM clinic_client").fetchone() == (2,)
    finally:
        reader.close()


# ------------------------------------------------------------------- round trip: PostgreSQL


def _pg_admin_conninfo(**overrides: Any) -> dict[str, Any]:
    s = connection.settings_dict
    info = {
        "host": s.get("HOST") or "127.0.0.1",
        "port": s.get("PORT") or 5432,
        "user": s.get("USER") or "postgres",
        "dbname": "postgres",
    }
    if s.get("PASSWORD"):
        info["password"] = s["PASSWORD"]
    info.update(overrides)
    return info


def pg_connect(dbname: str) -> Any:
    """A direct psycopg connection that returns JSON as text, as Django's cursor does."""
    import psycopg
    from psycopg.types.string import TextLoader

    conn = psycopg.connect(**_pg_admin_conninfo(dbname=dbname))
    conn.adapters.register_loader("jsonb", TextLoader)
    conn.adapters.register_loader("json", TextLoader)
    return conn


@pytest.fixture
def restore_db() -> Iterator[str]:
    """A separate, empty PostgreSQL database to restore into; dropped afterwards."""
    import psycopg

    name = f"bordin_restore_test_{os.getpid()}"
    with psycopg.connect(**_pg_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**_pg_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(not IS_PG, reason="PostgreSQL round trip")
def test_postgres_backup_restore_into_other_database_finds_every_record(
    clinic_data: dict[str, Any], tmp_path: Path, restore_db: str
) -> None:

    tables = data_tables()
    before = snapshot()
    assert_has_clinic_data(before)
    written = backup(tmp_path / "bordin.pgdump")
    assert written.read_bytes()[:5] == b"PGDMP"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600

    change_everything()  # in the test database: the dump is what counts
    target = {**connection.settings_dict, "NAME": restore_db}
    restore(written, settings_dict=target)
    with pg_connect(restore_db) as conn, conn.cursor() as cur:
        assert rows_of(cur, tables) == before

    # Change the restored database, then restore again over it (--clean --if-exists).
    with pg_connect(restore_db) as conn:
        conn.execute("DELETE FROM clinic_goalrating")
        conn.execute("UPDATE alerts_alert SET status = 'resolved'")
        conn.execute("UPDATE clinic_client SET display_name = 'changed'")
    restore(written, settings_dict=target)
    with pg_connect(restore_db) as conn, conn.cursor() as cur:
        assert rows_of(cur, tables) == before
        # Sequences come back too: the next insert does not collide with restored rows.
        cur.execute("SELECT max(id) FROM clinic_client")
        (max_id,) = cur.fetchone() or (0,)
        cur.execute("SELECT nextval(pg_get_serial_sequence('clinic_client', 'id'))")
        (next_id,) = cur.fetchone() or (0,)
        assert next_id > max_id


@pytest.mark.skipif(not IS_PG, reason="PostgreSQL restore atomicity")
def test_postgres_failed_restore_changes_nothing(
    clinic_data: dict[str, Any], tmp_path: Path, restore_db: str
) -> None:

    written = backup(tmp_path / "bordin.pgdump")
    target = {**connection.settings_dict, "NAME": restore_db}
    restore(written, settings_dict=target)
    with pg_connect(restore_db) as conn, conn.cursor() as cur:
        good = rows_of(cur, data_tables())
    truncated = tmp_path / "truncated.pgdump"
    truncated.write_bytes(written.read_bytes()[: written.stat().st_size * 2 // 3])
    with pytest.raises(BackupError, match="failed"):
        restore(truncated, settings_dict=target)
    with pg_connect(restore_db) as conn, conn.cursor() as cur:
        assert rows_of(cur, data_tables()) == good


# -------------------------------------------------------------------------- clear errors


def test_missing_backup_file(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"does not exist"):
        restore(tmp_path / "nope.sqlite3")


def test_backup_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match=r"does not exist; create it first"):
        backup(tmp_path / "no" / "such" / "folder" / "b.dump")


def test_wrong_format_is_refused_and_nothing_changes(
    clinic_data: dict[str, Any], tmp_path: Path
) -> None:
    before = snapshot()
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup at all\n", encoding="utf-8")
    with pytest.raises(BackupError, match="not a Bordin backup"):
        restore(junk)
    other_kind = tmp_path / "other.bak"
    if IS_PG:
        other_kind.write_bytes(b"SQLite format 3\x00" + bytes(4000))
        match = "is an SQLite backup, but the configured database is PostgreSQL"
    else:
        other_kind.write_bytes(b"PGDMP\x01\x0e\x00" + bytes(100))
        match = "is a PostgreSQL dump, but the configured database is SQLite"
    with pytest.raises(BackupError, match=match):
        restore(other_kind)
    assert snapshot() == before


@pytest.mark.skipif(IS_PG, reason="SQLite staging checks")
def test_sqlite_damaged_or_foreign_backup_leaves_database_unchanged(
    clinic_data: dict[str, Any], tmp_path: Path
) -> None:
    before = snapshot()
    good = backup(tmp_path / "good.sqlite3")
    damaged = tmp_path / "damaged.sqlite3"
    data = bytearray(good.read_bytes())
    data[4096 : len(data) // 2] = b"\xff" * (len(data) // 2 - 4096)  # wreck the b-tree pages
    damaged.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=r"damaged|not a readable SQLite database"):
        restore(damaged)
    assert snapshot() == before

    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE things (id INTEGER PRIMARY KEY)")
    with pytest.raises(BackupError, match="not a Bordin database"):
        restore(foreign)
    assert snapshot() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["good.sqlite3", "damaged.sqlite3", "foreign.sqlite3"]
    )  # the staged copies were cleaned up


def test_backup_refuses_to_overwrite_the_live_sqlite_file(tmp_path: Path) -> None:
    live = tmp_path / "live.sqlite3"
    sqlite3.connect(live).close()
    config = {"ENGINE": SQLITE_ENGINE, "NAME": str(live)}
    with pytest.raises(BackupError, match="live database itself"):
        backup(live, settings_dict=config)
    with pytest.raises(BackupError, match="in memory only"):
        backup(tmp_path / "x", settings_dict={"ENGINE": SQLITE_ENGINE, "NAME": ":memory:"})
    with pytest.raises(BackupError, match="does not exist"):
        backup(tmp_path / "x", settings_dict={**config, "NAME": str(tmp_path / "missing.db")})


def test_unsupported_engine(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="SQLite and PostgreSQL only"):
        backup(tmp_path, settings_dict={"ENGINE": "django.db.backends.mysql", "NAME": "x"})


UNREACHABLE = {
    "ENGINE": PG_ENGINE,
    "NAME": "bordin",
    "USER": "postgres",
    "HOST": "127.0.0.1",
    "PORT": 1,  # nothing listens on port 1
    "PASSWORD": "s3cret-Passw0rd",
    "OPTIONS": {"connect_timeout": 3},
}


def test_unreachable_postgres_server(tmp_path: Path) -> None:
    with pytest.raises(
        BackupError, match=re.escape("cannot reach the database 'bordin' at 127.0.0.1:1")
    ):
        backup(tmp_path / "b.pgdump", settings_dict=UNREACHABLE)
    assert list(tmp_path.iterdir()) == []  # no partial backup file


def test_missing_pg_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackupError, match=r"pg_dump was not found on PATH.*client tools"):
        backup(tmp_path / "b.pgdump", settings_dict=UNREACHABLE)
    dump = tmp_path / "b.pgdump"
    dump.write_bytes(b"PGDMP" + bytes(64))
    with pytest.raises(BackupError, match=r"pg_restore was not found on PATH"):
        restore(dump, settings_dict=UNREACHABLE)


def test_password_goes_in_the_environment_never_on_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(args: list[str], **kwargs: Any) -> Any:
        seen.append((args, kwargs["env"]))

        class Done:
            returncode = 0
            stderr = ""

        return Done()

    monkeypatch.setattr(backup_module.subprocess, "run", fake_run)
    backup(tmp_path / "b.pgdump", settings_dict=UNREACHABLE)
    dump = tmp_path / "b.pgdump"
    dump.write_bytes(b"PGDMP" + bytes(64))
    restore(dump, settings_dict=UNREACHABLE)
    assert len(seen) == 3  # pg_dump; pg_restore --list; pg_restore
    for args, env in seen:
        assert not any("s3cret" in a for a in args)
        assert env["PGPASSWORD"] == "s3cret-Passw0rd"
        assert env["PGHOST"] == "127.0.0.1" and env["PGPORT"] == "1"
    assert "--format=custom" in seen[0][0]
    assert {"--clean", "--if-exists", "--no-owner", "--single-transaction"} <= set(seen[2][0])
    assert seen[2][0][-1] == str(dump)


@pytest.mark.skipif(not IS_PG, reason="PostgreSQL server errors")
def test_postgres_restore_into_missing_database(tmp_path: Path) -> None:
    dump = backup(tmp_path / "b.pgdump")
    target = {**connection.settings_dict, "NAME": "bordin_no_such_database"}
    with pytest.raises(BackupError, match="bordin_no_such_database"):
        restore(dump, settings_dict=target)


def test_backup_keeps_old_file_when_it_fails(tmp_path: Path) -> None:
    dest = tmp_path / "nightly.pgdump"
    dest.write_bytes(b"PGDMP yesterday's backup")
    with pytest.raises(BackupError):
        backup(dest, settings_dict=UNREACHABLE)
    assert dest.read_bytes() == b"PGDMP yesterday's backup"
    assert [p.name for p in tmp_path.iterdir()] == ["nightly.pgdump"]


def test_links_survive_with_their_expiry(clinic_data: dict[str, Any], tmp_path: Path) -> None:
    """Check-in links keep working after a restore (their hashes and expiry are data)."""
    if IS_PG:
        pytest.skip("restoring over the PostgreSQL test database is covered separately")
    link = CheckinLink.objects.get()
    written = backup(tmp_path / "b.sqlite3")
    CheckinLink.objects.update(expires_at=timezone.now() - timedelta(days=1))
    restore(written)
    restored = CheckinLink.objects.get()
    assert restored.expires_at == link.expires_at
    assert restored.is_usable()
