"""The documented deployment, for real: gunicorn (``bordin serve``) behind nginx on loopback.

nginx's configuration is taken from ``docs/deploy.md`` (only the TLS lines, ports and paths are
changed), the environment from the same page. Two "people" connect from different loopback
addresses (127.0.0.2, the attacker, and 127.0.0.3, a client): the attacker's failed link
lookups and wrong passwords must not block the client's valid link or lock the user name out
for the real user. Counters must be shared by gunicorn's two workers: the attacker's 21st
failed lookup answers 429 whichever worker gets it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.web.test_crash import Server, free_port, fresh_database

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
LIMIT = 20
ATTACKER, CLIENT = "127.0.0.2", "127.0.0.3"

SETUP_SCRIPT = r"""
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bordin.web.settings")
import django
django.setup()
from datetime import date
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from django.contrib.auth import get_user_model
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Client, Clinic, Episode, Session, StaffProfile
clinic = Clinic.objects.create(name="Proxy Clinic")
user = get_user_model().objects.create_user("therapist", password="a long right password")
StaffProfile.objects.create(user=user, clinic=clinic)
client = Client.objects.create(clinic=clinic, therapist=user, display_name="Client")
episode = Episode.objects.create(client=client, start=date.today())
session = Session.objects.create(episode=episode, number=1, date=date.today())
print(CheckinLink.issue(session, hours=2)[1])
"""


def documented_env() -> dict[str, str]:
    """The variables of the documented environment file (placeholders filled in)."""
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("`/etc/bordin/bordin.env`", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    env: dict[str, str] = {}
    for line in block.splitlines():
        if "=" in line and not line.startswith("#"):
            name, value = line.split("=", 1)
            env[name] = value.split("#", 1)[0].strip()
    return env


def documented_nginx(listen: int, upstream: int, static: Path) -> str:
    """The first ``server`` block of the documented nginx configuration, on loopback."""
    text = DOCS.read_text(encoding="utf-8")
    block = text.split("```nginx\n", 1)[1].split("```")[0]
    server = block.split("\n}\n", 1)[0] + "\n}\n"
    assert "listen 443 ssl" in server and "http://127.0.0.1:8000" in server
    lines = [line for line in server.splitlines() if not line.strip().startswith("ssl_")]
    server = "\n".join(lines)
    server = re.sub(r"listen 443 ssl[^;]*;", f"listen 127.0.0.1:{listen};", server)
    server = server.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{upstream}")
    return server.replace("/opt/bordin/static/", f"{static}/")


@contextlib.contextmanager
def nginx(tmp_path: Path, listen: int, upstream: int, static: Path) -> Iterator[None]:
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    temp = " ".join(
        f"{kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf.write_text(
        f"daemon off; pid {prefix / 'nginx.pid'}; error_log {prefix / 'error.log'};\n"
        "events { worker_connections 64; }\n"
        f"http {{ access_log off; {temp}\n{documented_nginx(listen, upstream, static)}\n}}\n"
    )
    proc = subprocess.Popen(
        [NGINX, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            assert proc.poll() is None, (prefix / "error.log").read_text()
            with contextlib.suppress(OSError):
                http.client.HTTPConnection("127.0.0.1", listen, timeout=1).connect()
                break
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Browser:
    """Cookies and a fixed source address (a different loopback address per person)."""

    def __init__(self, port: int, source: str) -> None:
        self.port, self.source = port, source
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=20, source_address=(self.source, 0)
        )
        headers = {"Connection": "close"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode("utf-8", "replace")
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
            return response.status, text
        finally:
            conn.close()

    def log_in(self, username: str, password: str) -> tuple[int, str]:
        status, page = self.request("GET", "/login/")
        assert status == 200, page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token is not None
        form = {"csrfmiddlewaretoken": token.group(1), "username": username}
        return self.request("POST", "/login/", {**form, "password": password})


def test_documented_proxy_keeps_one_outsider_from_blocking_everyone(tmp_path: Path) -> None:
    assert Path(NGINX).exists(), "install nginx (Debian: apt-get install nginx); .ci/run does"
    static = tmp_path / "static"
    static.mkdir()
    with fresh_database(tmp_path) as db:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BORDIN_")}
        env.update(documented_env())
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "bordin.web.settings",
                "DATABASE_URL": db.url,
                "BORDIN_DATA_DIR": str(tmp_path),
                "BORDIN_SECRET_KEY": secrets.token_urlsafe(50),
                "BORDIN_FIELD_KEYS": os.environ["BORDIN_FIELD_KEYS"],
                "BORDIN_STATIC_ROOT": str(static),
                # Plain HTTP on loopback: nginx's TLS lines are left out.
                "BORDIN_ALLOWED_HOSTS": "127.0.0.1",
                "BORDIN_CSRF_TRUSTED_ORIGINS": "http://127.0.0.1",
                "BORDIN_SSL_REDIRECT": "false",
                "BORDIN_SECURE_COOKIES": "false",
                "BORDIN_CHECKIN_RATE_LIMIT": str(LIMIT),
            }
        )
        assert env["BORDIN_TRUST_X_FORWARDED_FOR"] == "true"
        setup = subprocess.run(
            [sys.executable, "-c", SETUP_SCRIPT],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
        token = setup.stdout.strip().splitlines()[-1]
        app_port, proxy_port = free_port(), free_port()
        server = Server(env, app_port, tmp_path / "server.log", tmp_path)
        server.start(timeout=60)
        try:
            with nginx(tmp_path, proxy_port, app_port, static):
                attacker = Browser(proxy_port, ATTACKER)
                client = Browser(proxy_port, CLIENT)
                # Link guessing: blocked after LIMIT failures, across both workers.
                for n in range(LIMIT):
                    assert attacker.request("GET", f"/c/guess-{n}")[0] == 404
                for _ in range(4):
                    assert attacker.request("GET", f"/c/{token}")[0] == 429
                assert client.request("GET", f"/c/{token}")[0] == 302
                # Password guessing locks out the attacker's address only.
                for _ in range(5):
                    status, page = attacker.log_in("therapist", "wrong password!")
                assert attacker.log_in("therapist", "a long right password")[0] == 429
                status, page = client.log_in("therapist", "a long right password")
                assert status == 302, page
                # No server software named; static files not readable by other sites.
                for path in ("/login/", "/static/bordin/bordin.css"):
                    conn = http.client.HTTPConnection("127.0.0.1", app_port, timeout=10)
                    conn.request("GET", path, headers={"X-Forwarded-For": "192.0.2.1"})
                    answer = conn.getresponse()
                    answer.read()
                    conn.close()
                    assert answer.status == 200, path
                    assert answer.getheader("Server") is None, path
                    assert answer.getheader("Access-Control-Allow-Origin") is None, path
                    assert "camera=()" in answer.getheader("Permissions-Policy", ""), path
        finally:
            server.kill()
        log = server.log.read_text()
        assert "Traceback" not in log, log[-3000:]
        assert token not in log
