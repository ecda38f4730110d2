"""The data folder: SQLite files 0600; encrypted backups and their restore (issue 15)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

pytestmark = pytest.mark.skipif(
    os.environ.get("BORDIN_TEST_DB", "sqlite") != "sqlite",
    reason="SQLite files and the CLI on an SQLite file",
)


def bordin(db: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **{k: v for k, v in os.environ.items() if k != "BORDIN_BACKUP_KEY"},
        "DATABASE_URL": f"sqlite:///{db}",
        "BORDIN_SECRET_KEY": "data-folder-test-key-not-secret",
        "DJANGO_SETTINGS_MODULE": "bordin.web.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bordin.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        timeout=120,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_and_wal_are_created_0600(tmp_path: Path) -> None:
    db = tmp_path / "bordin.sqlite3"
    old = os.umask(0o022)
    try:
        done = bordin(db, "manage", "migrate", "--verbosity", "0")
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    assert mode(db) == 0o600
    script = (
        "import os, stat, sys; from bordin.web.commands import _setup; _setup(); "
        "from bordin.web.clinic.models import Clinic; "
        "Clinic.objects.create(name='x'); "
        "print(' '.join(oct(stat.S_IMODE(os.stat(sys.argv[1] + s).st_mode)) "
        "for s in ('', '-wal', '-shm') if os.path.exists(sys.argv[1] + s)))"
    )
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "BORDIN_SECRET_KEY": "x",
        "DJANGO_SETTINGS_MODULE": "bordin.web.settings",
    }
    out = subprocess.run(
        [sys.executable, "-c", script, str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out and set(out) == {"0o600"}, out
    assert len(out) >= 2  # the WAL file exists while the connection is open


def test_encrypted_backup_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "bordin.sqlite3"
    assert bordin(db, "manage", "migrate", "--verbosity", "0").returncode == 0
    with sqlite3.connect(db) as con:
        con.execute(
            "INSERT INTO clinic_clinic (name, crisis_contacts, created_at, time_zone) "
            "VALUES ('Harbour', '', '2026-01-01 00:00:00', 'UTC')"
        )
    key = Fernet.generate_key().decode()
    target = tmp_path / "backup.enc"
    # No key: a clear error, nothing written.
    missing = bordin(db, "backup", "--encrypt", str(target))
    assert missing.returncode == 2
    assert "BORDIN_BACKUP_KEY is not set" in missing.stderr
    assert not target.exists()
    done = bordin(db, "backup", "--encrypt", str(target), BORDIN_BACKUP_KEY=key)
    assert done.returncode == 0, done.stderr
    data = target.read_bytes()
    assert data.startswith(b"BORDIN-ENCRYPTED-BACKUP-1\n")
    assert b"SQLite format 3" not in data and b"Harbour" not in data
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bordin")] == []
    with sqlite3.connect(db) as con:
        con.execute("UPDATE clinic_clinic SET name = 'Changed'")
    other_key = Fernet.generate_key().decode()
    wrong = bordin(db, "restore", str(target), "--yes", BORDIN_BACKUP_KEY=other_key)
    assert wrong.returncode == 2
    assert "wrong key" in wrong.stderr
    restored = bordin(db, "restore", str(target), "--yes", BORDIN_BACKUP_KEY=key)
    assert restored.returncode == 0, restored.stderr
    with sqlite3.connect(db) as con:
        assert [r[0] for r in con.execute("SELECT name FROM clinic_clinic")] == ["Harbour"]
    # A cut file is refused, not restored.
    cut = tmp_path / "cut.enc"
    cut.write_bytes(data[: len(data) // 2])
    refused = bordin(db, "restore", str(cut), "--yes", BORDIN_BACKUP_KEY=key)
    assert refused.returncode == 2
