"""`bordin backup` and `bordin restore` through the real console entry point (SQLite file DB)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from tests.web.helpers import bordin

pytestmark = pytest.mark.skipif(
    os.environ.get("BORDIN_TEST_DB", "sqlite") != "sqlite",
    reason="the PostgreSQL path is covered by test_backup.py; this drives the CLI on SQLite",
)


INSERT_CLINIC = (
    "INSERT INTO clinic_clinic (name, crisis_contacts, time_zone, created_at) "
    "VALUES ('Harbour', '', 'Europe/London', '2026-01-01 00:00:00')"
)


def clinics(db: Path) -> list[str]:
    with sqlite3.connect(db) as con:
        return [r[0] for r in con.execute("SELECT name FROM clinic_clinic ORDER BY name")]


def test_backup_then_restore_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "bordin.sqlite3"
    assert bordin(db, "manage", "migrate", "--verbosity", "0").returncode == 0
    with sqlite3.connect(db) as con:
        con.execute(INSERT_CLINIC)
    backup_file = tmp_path / "snapshot.sqlite3"
    done = bordin(db, "backup", str(backup_file))
    assert done.returncode == 0, done.stderr
    assert backup_file.exists()

    with sqlite3.connect(db) as con:
        con.execute("UPDATE clinic_clinic SET name = 'Changed'")
    done = bordin(db, "restore", str(backup_file), "--yes")
    assert done.returncode == 0, done.stderr
    assert clinics(db) == ["Harbour"]


def test_restore_of_a_bad_file_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "bordin.sqlite3"
    assert bordin(db, "manage", "migrate", "--verbosity", "0").returncode == 0
    with sqlite3.connect(db) as con:
        con.execute(INSERT_CLINIC)
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database")
    done = bordin(db, "restore", str(junk), "--yes")
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert clinics(db) == ["Harbour"]
