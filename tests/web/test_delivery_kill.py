"""Kill test: a real `bordin worker` process, SIGKILLed mid-batch, loses no message and sends
at most the one in flight twice (the transactional outbox, docs/delivery.md).

A subprocess migrates a fresh database (SQLite file, or a PostgreSQL database of its own with
``BORDIN_TEST_DB=postgres``) and records one attended session for each of N clients the way
the web app does (link, delivery and outbox message in one transaction). The worker sends to
an SMTP server in this process (aiosmtpd) that takes a few milliseconds per message, is killed
with SIGKILL when about a third has arrived, and started again. Reported: sent (distinct
recipients received), expected, duplicates.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.web.delivery_helpers import SmtpServer
from tests.web.test_crash import fresh_database

pytestmark = pytest.mark.slow
MESSAGES = 150

SEED = r"""
import os, sys
from datetime import date
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
from django.contrib.auth import get_user_model
from django.db import transaction
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Client, Clinic, Episode, Session, StaffProfile
from bordin.web.delivery.models import MeasurePlan
from bordin.web.delivery.services import on_session_recorded
clinic = Clinic.objects.create(name="Kill Clinic", time_zone="UTC")
MeasurePlan.objects.create(clinic=clinic, send_intake=False, send_fit_check=False)
user = get_user_model().objects.create_user("kill-therapist", password=None)
StaffProfile.objects.create(user=user, clinic=clinic)
for n in range(int(sys.argv[1])):
    client = Client.objects.create(
        clinic=clinic, therapist=user, display_name=f"Client {n}",
        contact_email=f"client{n}@example.org", consent_email=True,
    )
    episode = Episode.objects.create(client=client, start=date.today())
    with transaction.atomic():
        session = Session.objects.create(episode=episode, number=1, date=date.today())
        link, token = CheckinLink.issue(session, created_by=user)
        on_session_recorded(session, link, token, user)
print("seeded")
"""


def worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bordin.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_sigkill_mid_batch_loses_nothing(tmp_path: Path) -> None:
    with fresh_database(tmp_path) as db, SmtpServer() as smtp:
        smtp.inbox.delay = 0.01
        env = {
            **os.environ,
            "DATABASE_URL": db.url,
            "DJANGO_SETTINGS_MODULE": "bordin.web.settings",
            "BORDIN_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "BORDIN_EMAIL_HOST": "127.0.0.1",
            "BORDIN_EMAIL_PORT": str(smtp.port),
            "BORDIN_DELIVERY_CLAIM_SECONDS": "2",
            "BORDIN_WORKER_TICK_SECONDS": "1",
            "BORDIN_DATA_DIR": str(tmp_path),
        }
        seeded = subprocess.run(
            [sys.executable, "-c", SEED, str(MESSAGES)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        log = tmp_path / "worker.log"
        first = worker(env, log)
        deadline = time.monotonic() + 120
        while len(smtp.inbox.messages) < MESSAGES // 3 and time.monotonic() < deadline:
            assert first.poll() is None, log.read_text()[-3000:]
            time.sleep(0.005)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
        at_kill = len(smtp.inbox.messages)
        assert 0 < at_kill < MESSAGES, "the kill must land mid-batch"
        second = worker(env, log)
        try:
            while time.monotonic() < deadline:
                pending = db.query(
                    "SELECT COUNT(*) FROM delivery_outboxmessage WHERE status <> 'sent'"
                )[0][0]
                if pending == 0:
                    break
                time.sleep(0.2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(second.pid, signal.SIGKILL)
            second.wait(timeout=10)
    received = Counter((str(m["To"]), str(m["Subject"])) for m in smtp.inbox.messages)
    sent, duplicates = len(received), sum(received.values()) - len(received)
    print(
        f"\n[delivery kill test] {db.url.split(':')[0]}: killed after {at_kill} messages; "
        f"sent {sent} / expected {MESSAGES}, duplicates {duplicates}"
    )
    assert sent == MESSAGES, f"lost {MESSAGES - sent}"
    assert duplicates <= 1, received.most_common(3)
