"""Runner functions behind ``bordin demo``, ``bordin serve`` and ``bordin manage``.

They configure Django on first use, so importing this module stays cheap for the rest of the
CLI. ``run_demo`` is for trying Bordin on a laptop: it uses SQLite in ``data_dir``, turns
``DEBUG`` on and creates a secret key there if none is set. For production use ``run_serve``
behind a reverse proxy, or gunicorn (see ``docs/deploy.md``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

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
    _setup()
    call_command("migrate", interactive=False, verbosity=0)
    from bordin.web.demo import seed_demo

    summary = seed_demo()
    print(f"Bordin demo at http://{host}:{port}/  (data in {data_dir.resolve()})")
    print("Logins (password for all: " + summary["logins"][0][2] + "):")
    for username, role, _ in summary["logins"]:
        print(f"  {username:<18} {role}")
    call_command("runserver", f"{host}:{port}", use_reloader=False)


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
    call_command("migrate", interactive=False, verbosity=1)
    call_command("collectstatic", interactive=False, verbosity=0)
    from bordin.web.wsgi import application

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


def run_backup(dest: Path) -> Path:
    """``bordin backup DEST``: a consistent snapshot of the configured database."""
    _setup()
    from bordin.web.backup import backup

    return backup(dest)


def run_restore(src: Path) -> None:
    """``bordin restore SRC``: replace the database's contents with a backup, all or nothing."""
    _setup()
    from bordin.web.backup import restore

    restore(src)


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
