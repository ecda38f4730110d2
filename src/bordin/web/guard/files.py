"""The SQLite database, its WAL and shared-memory files are readable by their owner only.

SQLite creates its files with the process's umask (usually 0644: readable by every local
user) and gives the ``-wal`` and ``-shm`` files the database file's mode. Every new SQLite
connection therefore sets the database file, and the WAL and shared-memory files that exist
by then, to 0600 (issue 15). Opening the database in WAL mode (settings' ``init_command``)
creates those files before this runs.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any

PRIVATE = 0o600


def private_sqlite_files(sender: Any, connection: Any, **kwargs: Any) -> None:
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for path in (Path(name), Path(f"{name}-wal"), Path(f"{name}-shm")):
        with contextlib.suppress(FileNotFoundError):
            if stat.S_IMODE(path.stat().st_mode) != PRIVATE:
                os.chmod(path, PRIVATE)
