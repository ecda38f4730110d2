"""The demo clinic seed and the small settings helpers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from bordin.web.alerts.models import Alert
from bordin.web.clinic.models import Client, Response
from bordin.web.env import env_bool, env_int, env_list, env_str


@pytest.mark.django_db
def test_seed_demo_shows_every_signal(client: Any) -> None:
    from django.contrib.auth import get_user_model

    from bordin.web.demo import DEMO_PASSWORD, seed_demo
    from tests.web.helpers import verify_session

    summary = seed_demo(seed=2026)
    assert summary["created"]
    assert seed_demo(seed=2026)["created"] is False  # idempotent
    assert Client.objects.count() == 80  # + 4 at stages of the journey, 36 finished (journey)
    kinds = set(Alert.objects.values_list("kind", flat=True))
    assert {"risk", "rupture", "not_on_track", "divergence"} <= kinds
    assert Alert.objects.filter(kind="rupture", status="resolved").exists()
    assert Response.objects.filter(respondent="therapist").exists()
    # An imported PHQ-9-coded questionnaire, placeholder wording, clearly labelled (issue 11).
    from bordin.web.instruments.models import ClinicInstrument

    phq9 = ClinicInstrument.objects.get(code="phq9")
    assert phq9.in_checkin and "placeholder" in phq9.licence.lower()
    assert "PLACEHOLDER wording" in phq9.instrument.definition["name"]

    response = client.post("/login/", {"username": "demo-therapist", "password": DEMO_PASSWORD})
    assert response["Location"] == "/"
    verify_session(client, get_user_model().objects.get(username="demo-therapist"))
    html = client.get("/").content.decode()
    badges = set(re.findall(r'data-alert-kind="([a-z-]+)"', html))
    assert badges == {"risk", "rupture", "not-on-track", "divergence", "overdue", "hesitant-start"}
    first_row = re.search(r'<tr data-client-id="\d+">(.*?)</tr>', html, re.S)
    assert first_row and 'data-alert-kind="risk"' in first_row.group(1)
    for username in ("demo-therapist-2", "demo-therapist-3", "demo-admin"):
        client.post("/logout/")
        response = client.post("/login/", {"username": username, "password": DEMO_PASSWORD})
        assert response["Location"] == "/"
    verify_session(client, get_user_model().objects.get(username="demo-admin"))
    assert len(re.findall(r"<tr data-client-id=", client.get("/").content.decode())) == 43


def test_env_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_BOOL", "Off")
    monkeypatch.setenv("X_INT", "12")
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    monkeypatch.delenv("X_MISSING", raising=False)
    assert env_bool("X_BOOL", True) is False
    assert env_int("X_INT", 1) == 12
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    assert env_str("X_MISSING", "d") == "d"
    monkeypatch.setenv("X_BAD", "maybe")
    with pytest.raises(ImproperlyConfigured):
        env_bool("X_BAD", False)
    monkeypatch.setenv("X_BAD", "ten")
    with pytest.raises(ImproperlyConfigured):
        env_int("X_BAD", 1)


def test_demo_secret_is_generated_once(tmp_path: Path) -> None:
    from bordin.web.commands import _demo_secret

    key = _demo_secret(tmp_path)
    assert len(key) >= 50
    assert _demo_secret(tmp_path) == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_sqlite_uses_wal(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import bordin.web.settings as settings_module

    monkeypatch.setenv("DATABASE_URL", "sqlite:////tmp/bordin-wal-check.sqlite3")
    fresh = importlib.reload(settings_module)
    try:
        options = fresh.DATABASES["default"]["OPTIONS"]
        assert "journal_mode=WAL" in options["init_command"]
    finally:
        monkeypatch.undo()
        importlib.reload(settings_module)
