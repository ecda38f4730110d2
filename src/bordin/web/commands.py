"""Runner functions behind ``bordin demo``, ``bordin serve`` and ``bordin manage``.

They configure Django on first use, so importing this module stays cheap for the rest of the
CLI. ``run_demo`` is for trying Bordin on a laptop: it uses SQLite in ``data_dir``, turns
``DEBUG`` on and creates a secret key there if none is set. For production use ``run_serve``
behind a reverse proxy, or gunicorn (see ``docs/deploy.md``).
"""

from __future__ import annotations

import os
import secrets
import subprocess  # nosec B404 - starts `bordin worker` beside the demo server
import sys
from pathlib import Path
from typing import Any

SETTINGS = "bordin.web.settings"


def _setup() -> None:
    import django
    from django.core.servers.basehttp import WSGIRequestHandler

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    django.setup()
    # Django's server writes headers and body separately; without TCP_NODELAY the body waits
    # for the client's delayed ACK, adding ~40 ms to every request on a kept-alive connection.
    WSGIRequestHandler.disable_nagle_algorithm = True


def _demo_secret(data_dir: Path) -> str:
    """The demo's secret key, generated once into ``data_dir/secret_key`` (mode 0600)."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    key = secrets.token_urlsafe(50)
    path.touch(mode=0o600)
    path.write_text(key, encoding="utf-8")
    return key


def run_demo(port: int = 8000, data_dir: Path = Path("demo-data"), host: str = "127.0.0.1") -> None:
    """Migrate a fresh SQLite database in ``data_dir``, seed the demo clinic and serve it."""
    from django.core.management import call_command

    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["BORDIN_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("BORDIN_DEBUG", "true")
    os.environ.setdefault("BORDIN_SECURE_COOKIES", "false")
    # Made-up data on loopback: no second factor (only honoured with DEBUG, from 127.0.0.1/::1;
    # every page then shows a banner). Never set this anywhere else.
    os.environ.setdefault("BORDIN_DEMO_SKIP_2FA", "true")
    if not os.environ.get("BORDIN_SECRET_KEY"):
        os.environ["BORDIN_SECRET_KEY"] = _demo_secret(data_dir)
    os.environ.pop("DATABASE_URL", None)
    # Messages to clients go to files in data_dir/mail and data_dir/sms, never out.
    os.environ.setdefault("BORDIN_EMAIL_BACKEND", "bordin.web.delivery.mail.EmlFileBackend")
    os.environ.setdefault("BORDIN_SMS_BACKEND", "bordin.web.delivery.sms.FileBackend")
    os.environ.setdefault("BORDIN_BASE_URL", f"http://{host}:{port}")
    os.environ.setdefault("BORDIN_WORKER_TICK_SECONDS", "2")
    _setup()
    call_command("migrate", interactive=False, verbosity=0)
    from bordin.web.demo import seed_demo

    summary = seed_demo()
    worker = _start_demo_worker()
    print(f"Bordin demo at http://{host}:{port}/  (data in {data_dir.resolve()})")
    print(f"Messages to clients are written to {data_dir.resolve() / 'mail'} (.eml files).")
    if summary.get("emailed"):
        print(f"  {summary['emailed']} has an email address: record a session to send one.")
    print("Logins (password for all: " + summary["logins"][0][2] + "):")
    for username, role, _ in summary["logins"]:
        print(f"  {username:<18} {role}")
    try:
        call_command("runserver", f"{host}:{port}", use_reloader=False)
    finally:
        worker.terminate()
        worker.wait(timeout=10)


def _start_demo_worker() -> subprocess.Popen[bytes]:
    """``bordin worker`` beside the demo's web server (same environment, same database)."""
    env = {**os.environ, "BORDIN_WORKER_PARENT_PID": str(os.getpid())}  # exits with the demo
    return subprocess.Popen(  # nosec B603 - our own interpreter and module, no shell
        [sys.executable, "-m", "bordin.cli", "worker"], stdin=subprocess.DEVNULL, env=env
    )


def run_serve(
    host: str = "127.0.0.1", port: int = 8000, workers: int = 2, threads: int = 4
) -> None:
    """Apply migrations and serve with gunicorn (threaded workers); see ``docs/deploy.md``.

    Static files are served by WhiteNoise. There is no access log: request paths can carry a
    check-in token on first use, and the reverse proxy's log is the place to configure (and
    redact) access logging.
    """
    from django.core.management import call_command
    from gunicorn.app.base import BaseApplication

    _setup()
    # Refuses to start on any system check error, e.g. bordin.E004 (a proxy without a
    # trusted client address) or bordin.E001 (no field key).
    call_command("check")
    call_command("migrate", interactive=False, verbosity=1)
    call_command("collectstatic", interactive=False, verbosity=0)
    from bordin.web.wsgi import application

    _hide_server_header()
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 60,
        "accesslog": None,
        "errorlog": "-",
    }

    class Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> object:
            return application

    Server().run()


def run_worker(once: bool = False) -> None:
    """``bordin worker``: send what is due (docs/delivery.md); ``once``: one pass, then exit."""
    _setup()
    from bordin.web.delivery.worker import drain, run_worker, tick

    if once:
        tick()
        drain()
        return
    run_worker()


def _hide_server_header() -> None:
    """Send no ``Server: gunicorn`` header: the software's name only helps an attacker."""
    from gunicorn.http import wsgi

    default_headers = wsgi.Response.default_headers
    if getattr(default_headers, "bordin_hidden", False):
        return

    def without_server(self: object) -> list[str]:
        return [h for h in default_headers(self) if not h.lower().startswith("server:")]

    without_server.bordin_hidden = True  # type: ignore[attr-defined]
    wsgi.Response.default_headers = without_server


def run_backup(dest: Path, encrypt: bool = False) -> Path:
    """``bordin backup DEST``: a consistent snapshot of the configured database.

    ``encrypt``: the snapshot is written encrypted with ``BORDIN_BACKUP_KEY`` (web.backup_crypto);
    the plaintext only ever exists in a private temporary folder next to ``dest``.
    """
    _setup()
    import tempfile

    from bordin.web.backup import BackupError, backup
    from bordin.web.backup_crypto import BackupKeyError, encrypt_file, key_from_environment

    if not encrypt:
        return backup(dest)
    try:
        fernet = key_from_environment()
    except BackupKeyError as exc:
        raise BackupError(str(exc)) from None
    folder = dest if dest.is_dir() else dest.parent
    if not folder.is_dir():
        raise BackupError(f"The folder {folder} does not exist; create it first.")
    with tempfile.TemporaryDirectory(dir=folder, prefix=".bordin-backup-") as private:
        plain = backup(Path(private))
        target = dest / f"{plain.name}.enc" if dest.is_dir() else dest
        encrypt_file(plain, target, fernet)
    return target


def run_restore(src: Path) -> None:
    """``bordin restore SRC``: replace the database's contents with a backup, all or nothing.

    An encrypted backup is decrypted with ``BORDIN_BACKUP_KEY`` into a private temporary
    folder first.
    """
    _setup()
    import tempfile

    from bordin.web.backup import BackupError, restore
    from bordin.web.backup_crypto import (
        BackupKeyError,
        decrypt_file,
        is_encrypted,
        key_from_environment,
    )

    if not (src.is_file() and is_encrypted(src)):
        restore(src)
        return
    try:
        fernet = key_from_environment()
        with tempfile.TemporaryDirectory(dir=src.parent, prefix=".bordin-restore-") as private:
            plain = Path(private) / "backup"
            decrypt_file(src, plain, fernet)
            restore(plain)
    except BackupKeyError as exc:
        raise BackupError(str(exc)) from None


def run_audit_verify() -> tuple[int, str | None]:
    """``bordin audit verify``: ``(events checked, description of the first bad one or None)``."""
    _setup()
    from bordin.web.audit.models import verify_chain

    checked, bad = verify_chain()
    if bad is None:
        return checked, None
    return (
        checked,
        f"event #{bad.pk} ({bad.at:%Y-%m-%d %H:%M:%S} {bad.action} by {bad.username or '-'})",
    )


def run_import_clients(path: Path, clinic_id: int, *, commit: bool) -> tuple[Any, int]:
    """``bordin import-clients FILE --clinic ID`` (issue 9): check, then store all or nothing."""
    _setup()
    from bordin.web.operations.imports import import_file

    return import_file(path, clinic_id, commit=commit)


def run_purge(*, dry_run: bool) -> tuple[list[tuple[Any, int]], list[tuple[Any, int]]]:
    """``bordin purge`` (issue 9): apply each clinic's retention setting."""
    _setup()
    from bordin.web.operations.rights import purge

    return purge(dry_run=dry_run)


def run_import_questionnaire(path: Path, clinic_id: int | None) -> list[str]:
    """``bordin import-questionnaire FILE [--clinic ID]``: what was imported, as lines.

    Raises ``ValueError`` (a ``QuestionnaireError`` naming each problem, or an unknown clinic)
    with nothing stored.
    """
    _setup()
    from bordin.measures.questionnaire import check_size
    from bordin.web.clinic.models import Clinic
    from bordin.web.instruments.services import import_questionnaire

    if clinic_id is None:
        clinics = list(Clinic.objects.order_by("pk")[:2])
        if len(clinics) != 1:
            raise ValueError(
                "give --clinic ID: "
                + ("there is no clinic" if not clinics else "there is more than one clinic")
            )
        clinic = clinics[0]
    else:
        found = Clinic.objects.filter(pk=clinic_id).first()
        if found is None:
            raise ValueError(f"there is no clinic with id {clinic_id}")
        clinic = found
    try:
        check_size(path.stat().st_size, str(path))
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    result = import_questionnaire(data, str(path), clinic)
    entry = result.entry
    head = "Imported" if result.new_version else "Already imported (unchanged):"
    return [
        f"{head} {result.imported.definition.name} as {entry.code} version "
        f"{entry.instrument.version} for clinic {clinic.pk} ({clinic.name}).",
        *result.imported.notes,
        "An admin still has to tick 'May be used in this clinic' on /instruments/ before the "
        "check-in asks it."
        if not entry.may_use
        else "It is asked in the check-in."
        if entry.active
        else "It is not active in the check-in.",
    ]


def run_manage(argv: list[str]) -> None:
    """Django's ``manage.py`` with Bordin's settings: ``bordin manage createsuperuser``."""
    from django.core.management import execute_from_command_line

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    execute_from_command_line(["bordin manage", *argv])
