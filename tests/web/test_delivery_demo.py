"""`bordin demo` starts the worker beside the web server: recording a session for the demo
client with an email address writes an ``.eml`` to ``<data-dir>/mail/`` within 10 s, and its
link opens that client's check-in. Runs the real command in a process of its own."""

from __future__ import annotations

import contextlib
import email
import email.policy
import hashlib
import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from tests.web.delivery_helpers import LINK, free_port

pytestmark = pytest.mark.slow

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> tuple[int, str, str]:
        with self.opener.open(self.base + path, timeout=30) as r:
            return r.status, r.geturl(), r.read().decode()

    def post(self, path: str, data: dict[str, str]) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode()
        with self.opener.open(self.base + path, body, timeout=30) as r:
            return r.status, r.geturl(), r.read().decode()


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"demo exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.2)
    raise RuntimeError(f"demo did not start in {timeout}s:\n{log.read_text()[-3000:]}")


def test_demo_sends_an_eml_with_the_clients_checkin_link(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "demo-data"
    log = tmp_path / "demo.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BORDIN_", "DATABASE_URL", "DJANGO_SETTINGS"))
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bordin.cli", "demo", "--port", str(port), "--data-dir", data],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for_port(port, proc, log, timeout=180)
        db = sqlite3.connect(data / "bordin.sqlite3", timeout=30)
        [(pk, name)] = db.execute(
            "SELECT id, display_name FROM clinic_client WHERE consent_email"
        ).fetchall()
        browser = Browser(f"http://127.0.0.1:{port}")
        _, _, page = browser.get("/login/")
        token = CSRF.search(page)
        assert token
        browser.post(
            "/login/",
            {
                "username": "demo-therapist",
                "password": "bordin-demo-2026",
                "csrfmiddlewaretoken": token.group(1),
            },
        )
        _, _, page = browser.get(f"/clients/{pk}/")
        token = CSRF.search(page)
        assert token and name in page
        started = time.monotonic()
        status, _, page = browser.post(
            f"/clients/{pk}/sessions/",
            {
                "date": date.today().isoformat(),
                "attendance": "attended",
                "csrfmiddlewaretoken": token.group(1),
            },
        )
        assert status == 200 and 'data-action="checkin-qr"' in page
        found: list[Path] = []
        while time.monotonic() - started < 10 and not found:
            found = [
                p
                for p in sorted((data / "mail").glob("*.eml"))
                if "session check-in" in p.read_text(errors="replace")
            ]
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        assert found, f"no .eml after {elapsed:.1f} s:\n{log.read_text()[-2000:]}"
        print(f"\n[demo delivery] .eml written {elapsed:.2f} s after recording the session")
        msg = email.message_from_bytes(found[0].read_bytes(), policy=email.policy.default)
        assert msg["To"] == "alex.demo@example.org"
        body = msg.get_body(preferencelist=("plain",))
        assert body is not None
        link = LINK.search(str(body.get_content()))
        assert link and link.group(0).startswith(f"http://127.0.0.1:{port}/c/")
        # The link opens that client's check-in (a phone with no staff session).
        status, url, page = Browser("").get(link.group(0))
        assert status == 200 and url.endswith("/c/") and 'name="idempotency_key"' in page
        token_hash = hashlib.sha256(link.group(0).rsplit("/", 1)[1].encode()).hexdigest()
        [(client_id,)] = db.execute(
            "SELECT client_id FROM checkins_checkinlink WHERE token_hash = ?", (token_hash,)
        ).fetchall()
        assert client_id == pk
        db.close()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
