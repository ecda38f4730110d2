"""Shared helpers for the web tests."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.test import Client as DjangoClient
from django.utils import timezone

ALLIANCE = {"goals": 8, "tasks": 8, "bond": 9, "overall": 8}
WELLBEING = {"mood": 5, "daily": 6, "connection": 5, "coping": 6}


def record_checkin(
    session: Any,
    alliance: dict[str, float] | None = None,
    wellbeing: dict[str, float] | None = None,
    *,
    submitted_at: datetime | None = None,
) -> None:
    """Store a client check-in directly (scored by bordin.measures), without the form."""
    from bordin.web.clinic import analysis
    from bordin.web.clinic.models import Instrument, Response

    reg = analysis.registry()
    when = submitted_at or timezone.now() - timedelta(days=1)
    for code, answers in ((analysis.ALLIANCE, alliance), (analysis.WELLBEING, wellbeing)):
        if answers is None:
            continue
        score = reg[code].score(answers)
        Response.objects.create(
            session=session,
            instrument=Instrument.snapshot(reg[code]),
            respondent="client",
            answers=answers,
            total=score.total,
            risk_flagged=bool(score.risk_items),
            submitted_at=when,
            idempotency_key=f"t-{session.pk}-{code}",
        )


def record_therapist_rating(session: Any, answers: dict[str, float], user: Any = None) -> None:
    from bordin.web.clinic import analysis
    from bordin.web.clinic.models import Instrument, Response

    inst = analysis.registry()[analysis.THERAPIST_ALLIANCE]
    Response.objects.create(
        session=session,
        instrument=Instrument.snapshot(inst),
        respondent="therapist",
        rated_by=user,
        answers=answers,
        total=inst.score(answers).total,
        submitted_at=timezone.now(),
        idempotency_key=f"t-{session.pk}-therapist",
    )


def checkin_post(goals: list[Any], key: str = "k" * 32, **overrides: Any) -> dict[str, Any]:
    """A complete, valid check-in form submission; ``overrides`` replace or drop fields."""
    data: dict[str, Any] = {"idempotency_key": key}
    data.update({f"alliance-{k}": str(v) for k, v in ALLIANCE.items()})
    data["alliance-better"] = "Maybe a little more time at the end."
    data.update({f"wellbeing-{k}": str(v) for k, v in WELLBEING.items()})
    data["wellbeing-safety"] = "0"
    data.update({f"goal-{g.pk}": "6" for g in goals})
    for name, value in overrides.items():
        name = name.replace("__", "-")
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


# --- second factor -----------------------------------------------------------------------------


def totp_device(user: Any) -> Any:
    """The user's confirmed authenticator (TOTP) device, created on first use."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    return device


def totp_code(device: Any, ahead: int = 0) -> str:
    """The code the authenticator app shows now (``ahead`` steps later: the next ones).

    django-otp accepts each time step once; a second log-in within 30 seconds can use the next
    step's code (``ahead=1``), which the device's clock tolerance of one step allows.
    """
    from django_otp.oath import TOTP

    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if device.last_t >= totp.t():
        ahead = max(ahead, device.last_t - totp.t() + 1)
    totp.drift += ahead
    return f"{totp.token():0{device.digits}d}"


def verify_session(client: Any, user: Any) -> None:
    """Mark the logged-in session of ``client`` as having passed the second factor.

    What django-otp stores after a correct code: the persistent id of the user's confirmed
    TOTP device, under ``otp_device_id``.
    """
    from django_otp import DEVICE_ID_SESSION_KEY

    device = totp_device(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def login_verified(client: Any, user: Any) -> Any:
    """Log ``user`` in on the test ``client`` with a session that passed the second factor."""
    DjangoClient.force_login(client, user)
    verify_session(client, user)
    return client


class VerifiedClient(DjangoClient):
    """A test client whose ``force_login`` gives a session that passed the second factor.

    The ``client`` fixture (``tests/web/conftest.py``) is one, because every real staff session
    has passed it; tests of the second factor itself use a plain ``django.test.Client``.
    """

    def force_login(self, user: Any, backend: str | None = None) -> None:
        super().force_login(user, backend)
        verify_session(self, user)


def bordin(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``bordin`` command in its own process, on the SQLite database file ``db``."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db}",
        "BORDIN_SECRET_KEY": "cli-test-key-not-secret",
        "DJANGO_SETTINGS_MODULE": "bordin.web.settings",
    }
    return subprocess.run(
        [sys.executable, "-m", "bordin.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
