"""Backing up and restoring the configured database (``bordin backup`` / ``bordin restore``).

* **SQLite**: :func:`backup` takes a consistent snapshot with SQLite's online backup API while
  the app keeps running (WAL readers do not block writers), and writes it as one
  self-contained file. :func:`restore` first copies the backup into a temporary file next to the
  database and checks it (``PRAGMA integrity_check`` and Django's migration table); only then
  does it copy the checked pages into the live database in **one** SQLite write transaction.
  An error at any point, a crash included, leaves the database as it was.
* **PostgreSQL**: ``pg_dump --format=custom`` and ``pg_restore --clean --if-exists --no-owner
  --single-transaction --exit-on-error``: the restore is one transaction, so it is all or
  nothing too. Connection settings come from Django's ``connections["default"]``; the password
  goes to the tools in the ``PGPASSWORD`` environment variable, never on the command line.

Backup files hold health data: they are created readable by their owner only (mode 0600).
Every failure raises :class:`BackupError` with a message that says what to fix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess  # nosec B404 - runs pg_dump/pg_restore with argument lists, no shell
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"
PG_TIMEOUT_SECONDS = 60 * 60
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


class BackupError(Exception):
    """A backup or restore could not be done; the message says what to fix."""


# --------------------------------------------------------------------------------- public API


def backup(dest: Path, *, settings_dict: Mapping[str, Any] | None = None) -> Path:
    """Back up the database to ``dest`` and return the path of the file written.

    ``dest`` may be an existing directory: the file is then named after the current time
    (``bordin-20250101-120000.sqlite3`` or ``.pgdump``). An existing file is replaced only once
    the new backup is complete. ``settings_dict`` defaults to Django's default connection.
    """
    config = _settings(settings_dict)
    engine = _engine(config)
    dest = Path(dest)
    if dest.is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        dest = dest / f"bordin-{stamp}.{'sqlite3' if engine == 'sqlite' else 'pgdump'}"
    if not dest.parent.is_dir():
        raise BackupError(f"The folder {dest.parent} does not exist; create it first.")
    with _temp_file(dest.parent, dest.name) as tmp:
        if engine == "sqlite":
            _sqlite_backup(config, tmp, dest)
        else:
            _pg_backup(config, tmp)
        _fsync(tmp)
        os.replace(tmp, dest)
    _fsync_dir(dest.parent)
    return dest


def restore(src: Path, *, settings_dict: Mapping[str, Any] | None = None) -> None:
    """Replace the contents of the database with the backup ``src``, all or nothing.

    Stop the web server first, or at least expect requests during the restore to wait or fail;
    run ``bordin manage migrate`` afterwards when the backup comes from an older version.
    """
    config = _settings(settings_dict)
    engine = _engine(config)
    src = Path(src)
    if not src.is_file():
        raise BackupError(f"The backup file {src} does not exist (or is not a file).")
    kind = _file_kind(src)
    if engine == "sqlite":
        if kind == "pg":
            raise BackupError(
                f"{src} is a PostgreSQL dump, but the configured database is SQLite. "
                "Point DATABASE_URL at the PostgreSQL database to restore it there."
            )
        if kind != "sqlite":
            raise BackupError(f"{src} is not a Bordin backup (neither SQLite nor pg_dump format).")
        _sqlite_restore(config, src)
    else:
        if kind == "sqlite":
            raise BackupError(
                f"{src} is an SQLite backup, but the configured database is PostgreSQL. "
                "Point DATABASE_URL at an SQLite file (sqlite:////path/bordin.sqlite3) to "
                "restore it there."
            )
        if kind != "pg":
            raise BackupError(
                f"{src} is not a Bordin backup: expected a pg_dump custom-format file "
                "(made by `bordin backup`)."
            )
        _pg_restore(config, src)


# ----------------------------------------------------------------------------------- helpers


def _settings(settings_dict: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if settings_dict is not None:
        return settings_dict
    from django.db import connections

    result: Mapping[str, Any] = connections["default"].settings_dict
    return result


def _engine(config: Mapping[str, Any]) -> str:
    engine = str(config.get("ENGINE", ""))
    if engine.endswith("sqlite3"):
        return "sqlite"
    if engine.endswith("postgresql") or engine.endswith("postgis"):
        return "postgres"
    raise BackupError(f"Backups support SQLite and PostgreSQL only, not {engine or 'no engine'}.")


def _file_kind(path: Path) -> str:
    with path.open("rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "pg"
    return "unknown"


@contextlib.contextmanager
def _temp_file(folder: Path, name: str) -> Iterator[Path]:
    """A private (0600) temporary file in ``folder``; removed unless it was moved away."""
    fd, raw = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    path = Path(raw)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
        for suffix in ("-journal", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------------------------ SQLite


def _sqlite_name(config: Mapping[str, Any]) -> str:
    name = str(config.get("NAME") or "")
    if not name or name == ":memory:" or ("mode=memory" in name and "cache=shared" not in name):
        raise BackupError(
            "The configured SQLite database lives in memory only; there is nothing to back up. "
            "Set DATABASE_URL to a file (sqlite:////path/bordin.sqlite3)."
        )
    return name


def _sqlite_connect(name: str, *, must_exist: bool) -> sqlite3.Connection:
    is_uri = name.startswith("file:")
    if not is_uri:
        path = Path(name)
        if must_exist and not path.is_file():
            raise BackupError(
                f"The SQLite database {path} does not exist; check DATABASE_URL "
                "(or run `bordin manage migrate` to create it)."
            )
        if not path.parent.is_dir():
            raise BackupError(f"The folder of the SQLite database {path} does not exist.")
    try:
        return sqlite3.connect(
            name, uri=is_uri, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise BackupError(f"Cannot open the SQLite database {name}: {exc}") from exc


def _same_file(name: str, other: Path) -> bool:
    if name.startswith("file:"):
        return False
    try:
        return Path(name).resolve() == other.resolve()
    except OSError:
        return False


def _sqlite_backup(config: Mapping[str, Any], tmp: Path, dest: Path) -> None:
    name = _sqlite_name(config)
    if _same_file(name, dest):
        raise BackupError(f"{dest} is the live database itself; choose another destination.")
    source = _sqlite_connect(name, must_exist=True)
    try:
        target = sqlite3.connect(tmp, isolation_level=None)
        try:
            # One step: the whole database is copied under one read transaction, a consistent
            # snapshot even while the app writes (WAL lets those writes continue meanwhile).
            source.backup(target, pages=-1)
            # A self-contained file: no -wal/-shm companions needed to read the backup.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {name} failed: {exc}") from exc
    finally:
        source.close()
    _check_sqlite_file(tmp, label=str(dest))


def _check_sqlite_file(path: Path, *, label: str) -> None:
    """Raise unless ``path`` is an intact SQLite database holding a Bordin schema."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchall()
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{label} is not a readable SQLite database: {exc}") from exc
    if result != [("ok",)]:
        problems = "; ".join(str(row[0]) for row in result[:3])
        raise BackupError(f"{label} is damaged (SQLite integrity check: {problems}).")
    if "django_migrations" not in tables:
        raise BackupError(f"{label} is an SQLite file, but not a Bordin database.")


def _sqlite_restore(config: Mapping[str, Any], src: Path) -> None:
    name = _sqlite_name(config)
    if _same_file(name, src):
        raise BackupError(f"{src} is the live database itself; nothing to restore.")
    folder = Path(name).resolve().parent if not name.startswith("file:") else None
    if folder is not None and not folder.is_dir():
        raise BackupError(f"The folder of the SQLite database {name} does not exist.")
    with _temp_file(folder or Path(tempfile.gettempdir()), "bordin-restore") as staged:
        # 1. Stage: copy the backup and check the copy, so what is applied is what was checked.
        try:
            reader = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True)
            try:
                writer = sqlite3.connect(staged, isolation_level=None)
                try:
                    reader.backup(writer, pages=-1)
                finally:
                    writer.close()
            finally:
                reader.close()
        except sqlite3.Error as exc:
            raise BackupError(f"{src} is not a readable SQLite database: {exc}") from exc
        _check_sqlite_file(staged, label=str(src))
        # 2. Apply: SQLite copies every page into the live database in one write transaction
        # (readers and writers of a running app wait on the lock); a failure or a crash rolls
        # it back through the journal. Unlike swapping files, this is safe with the WAL.
        target = _sqlite_connect(name, must_exist=False)
        try:
            source = sqlite3.connect(staged, isolation_level=None)
            try:
                source.backup(target, pages=-1)
            finally:
                source.close()
        except sqlite3.Error as exc:
            raise BackupError(
                f"Restoring into {name} failed, the database is unchanged: {exc}. "
                "Stop the web server and try again."
            ) from exc
        finally:
            target.close()


# -------------------------------------------------------------------------------- PostgreSQL


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} was not found on PATH. Install the PostgreSQL client tools of the same "
            "major version as the server (Debian/Ubuntu: apt install postgresql-client)."
        )
    return path


def _pg_env(config: Mapping[str, Any]) -> dict[str, str]:
    """libpq environment for the tools: connection settings and the password, no arguments."""
    env = dict(os.environ)
    for var in ("PGSERVICE", "PGSERVICEFILE", "PGPASSFILE", "PGOPTIONS"):
        env.pop(var, None)
    options: Mapping[str, Any] = config.get("OPTIONS") or {}
    values = {
        "PGHOST": config.get("HOST") or "",
        "PGPORT": config.get("PORT") or "",
        "PGUSER": config.get("USER") or "",
        "PGPASSWORD": config.get("PASSWORD") or "",
        "PGDATABASE": config.get("NAME") or "",
        "PGSSLMODE": options.get("sslmode", ""),
        "PGSSLROOTCERT": options.get("sslrootcert", ""),
        "PGSSLCERT": options.get("sslcert", ""),
        "PGSSLKEY": options.get("sslkey", ""),
        "PGCONNECT_TIMEOUT": str(options.get("connect_timeout", 10)),
    }
    for var, value in values.items():
        if value:
            env[var] = str(value)
        else:
            env.pop(var, None)
    if not env.get("PGDATABASE"):
        raise BackupError("DATABASE_URL names no PostgreSQL database.")
    return env


def _where(config: Mapping[str, Any]) -> str:
    host = config.get("HOST") or "localhost"
    port = config.get("PORT") or 5432
    return f"database {config.get('NAME')!r} at {host}:{port}"


def _run_pg(args: list[str], config: Mapping[str, Any], action: str) -> None:
    try:
        done = subprocess.run(  # noqa: S603 - fixed tool path and arguments, no shell, no secrets
            args,
            env=_pg_env(config),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PG_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{action} of {_where(config)} took over an hour; gave up.") from exc
    except OSError as exc:
        raise BackupError(f"Could not run {args[0]}: {exc}") from exc
    if done.returncode == 0:
        return
    detail = done.stderr.strip().splitlines()
    message = " ".join(line.strip() for line in detail[-4:]) or f"exit status {done.returncode}"
    lowered = message.lower()
    if "could not connect" in lowered or "connection to server" in lowered:
        raise BackupError(
            f"{action} failed: cannot reach the {_where(config)}. Check that PostgreSQL is "
            f"running and DATABASE_URL is right. ({message})"
        )
    if "version mismatch" in lowered:
        raise BackupError(
            f"{action} failed: the client tools do not match the server version; install "
            f"the PostgreSQL client of the server's major version. ({message})"
        )
    raise BackupError(f"{action} of {_where(config)} failed: {message}")


def _pg_backup(config: Mapping[str, Any], tmp: Path) -> None:
    args = [
        _pg_tool("pg_dump"),
        "--format=custom",
        "--no-password",
        f"--file={tmp}",
    ]
    _run_pg(args, config, "Backup")


def _pg_restore(config: Mapping[str, Any], src: Path) -> None:
    tool = _pg_tool("pg_restore")
    # Check the archive before touching the database: a truncated file fails here.
    _run_pg([tool, "--list", str(src)], {**config, "NAME": config.get("NAME") or "-"}, "Reading")
    args = [
        tool,
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        f"--dbname={config.get('NAME')}",
        str(src),
    ]
    _run_pg(args, config, "Restore")
