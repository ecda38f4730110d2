"""Bordin in the client's language (issue 14): catalogues complete, client pages in the
client's language, staff pages in the staff member's, dates by locale."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test.signals import template_rendered
from django.urls import reverse
from django.utils import timezone

from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import StaffProfile
from tests.web.helpers import checkin_post, record_checkin
from tests.web.journey_helpers import open_link

WEB = Path(__file__).resolve().parents[2] / "src" / "bordin" / "web"

#: Words of Bordin's English client pages that never occur in their Spanish versions.
ENGLISH_WORDS = (
    "Your check-in",
    "About today",
    "About the past week",
    "Not at all",
    "Completely",
    "Send",
    "session",
    "Thank you",
    "your answers",
    "Please",
    "goals",
    "optional",
    "journey",
    "therapist",
    "Download",
    "welcome",
    "the",
)


def _entries(po: str) -> list[tuple[str, str, str]]:
    """(flags, msgid, msgstr) of each entry of a --no-wrap catalogue (header skipped). A
    message with line breaks spans several lines (``msgid ""`` then one line per part)."""
    out = []
    for block in po.split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        flags = " ".join(line for line in lines if line.startswith("#,"))
        parts: dict[str, list[str]] = {}
        key = ""
        for line in lines:
            if line.startswith(("msgid ", "msgid_plural ", "msgstr")):
                key, _, value = line.partition(" ")
                parts.setdefault("msgstr" if key.startswith("msgstr") else key, []).append(value)
            elif line.startswith('"') and key:
                parts["msgstr" if key.startswith("msgstr") else key].append(line)
        msgid = "".join(v[1:-1] for v in parts.get("msgid", []))
        if not msgid:
            continue
        out.append((flags, msgid, " ".join(parts.get("msgstr", []))))
    return out


def test_makemessages_leaves_nothing_untranslated_or_fuzzy_in_spanish(tmp_path: Path) -> None:
    """``makemessages -l es`` on a copy of the package: every message has a translation."""
    if shutil.which("xgettext") is None:  # pragma: no cover - .ci/run installs gettext
        pytest.fail("xgettext is missing: install Debian's gettext (see docs/translating.md)")
    copy = tmp_path / "web"
    shutil.copytree(WEB, copy, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "makemessages",
            "-l",
            "es",
            "--no-location",
            "--no-wrap",
            "--no-obsolete",
        ],
        cwd=copy,
        check=True,
        capture_output=True,
        # No settings module: makemessages then writes to the copy's ./locale only.
        env={"PATH": str(Path(shutil.which("xgettext") or "/usr/bin").parent)},
    )
    po = (copy / "locale" / "es" / "LC_MESSAGES" / "django.po").read_text("utf-8")
    entries = _entries(po)
    assert len(entries) > 100
    fuzzy = [msgid for flags, msgid, _ in entries if "fuzzy" in flags]
    untranslated = [msgid for _, msgid, msgstr in entries if re.fullmatch(r'("")( "")*', msgstr)]
    assert fuzzy == [], f"fuzzy in es: {fuzzy}"
    assert untranslated == [], f"untranslated in es: {untranslated}"
    # The committed catalogue is the one makemessages writes (nothing to merge by hand).
    committed = (WEB / "locale" / "es" / "LC_MESSAGES" / "django.po").read_text("utf-8")
    assert sorted(_entries(committed)) == sorted(entries)


def test_compiled_catalogue_is_built_and_current() -> None:
    """``make`` builds the .mo from the .po (docs/translating.md); never a stale one."""
    po = WEB / "locale" / "es" / "LC_MESSAGES" / "django.po"
    mo = po.with_suffix(".mo")
    assert mo.exists(), "run `make install` (it compiles the translations)"
    assert mo.stat().st_mtime >= po.stat().st_mtime, "run `make messages`"


@pytest.fixture
def spanish(client_record: Any) -> Any:
    client_record.preferred_language = "es"
    client_record.save(update_fields=["preferred_language"])
    return client_record


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def assert_no_english(text: str, allowed: tuple[str, ...] = ()) -> None:
    for word in allowed:
        text = text.replace(word, "")
    found = [w for w in ENGLISH_WORDS if re.search(rf"\b{re.escape(w)}\b", text)]
    assert found == [], f"English words on a Spanish page: {found}\n{text}"


def test_spanish_client_gets_the_check_in_in_spanish(
    client: Any, spanish: Any, add_session: Any, goals: list[Any], owner: Any
) -> None:
    session = add_session(days_ago=0)
    _, token = CheckinLink.issue(session, created_by=owner)
    assert client.get(f"/c/{token}").status_code == 302
    page = client.get("/c/", HTTP_ACCEPT_LANGUAGE="en-GB,en")
    html = page.content.decode()
    assert '<html lang="es"' in html
    assert page["Content-Language"] == "es"
    assert "Tu cuestionario" in html
    assert "Hoy trabajamos en lo que yo quiero trabajar." in html  # our own wording, in es
    assert "Totalmente" in html and "A veces" in html
    assert " de " in html.split("Unas preguntas sobre tu sesión del ", 1)[1][:20]  # es date
    assert_no_english(_visible_text(html), allowed=(spanish.clinic.name, *(g.text for g in goals)))
    # An error is explained in Spanish, and nothing entered is lost.
    bad = client.post("/c/", checkin_post(goals, alliance__goals=None))
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "Revisa tus respuestas" in text and "Elige un número del 0 al 10." in text
    done = client.post("/c/", checkin_post(goals))
    assert done.status_code == 200
    assert "Gracias" in done.content.decode()
    assert_no_english(
        _visible_text(done.content.decode()),
        allowed=(spanish.clinic.name, *(g.text for g in goals)),
    )


def test_english_client_page_stays_as_it_was(
    client: Any, client_record: Any, add_session: Any, goals: list[Any], owner: Any
) -> None:
    session = add_session(days_ago=0)
    _, token = CheckinLink.issue(session, created_by=owner)
    client.get(f"/c/{token}")
    html = client.get("/c/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert '<html lang="en"' in html  # the client's language, not the browser's
    assert "Your check-in" in html and "About today&#x27;s session" in html


def test_spanish_client_journey_pages(client: Any, spanish: Any, episode: Any) -> None:
    open_link(client, "intake", episode)
    intake = client.get(reverse("journey-client")).content.decode()
    assert '<html lang="es"' in intake and "Antes de tu primera sesión" in intake
    assert "Ánimo bajo" in intake and "No, es la primera vez" in intake
    assert_no_english(_visible_text(intake), allowed=(spanish.clinic.name,))


def test_therapist_page_stays_english_for_a_spanish_client(
    login: Any, spanish: Any, owner: Any, add_session: Any
) -> None:
    record_checkin(add_session(days_ago=0), {"goals": 8, "tasks": 8, "bond": 9, "overall": 8})
    client = login(owner)
    html = client.get(reverse("client", args=[spanish.pk])).content.decode()
    assert '<html lang="en"' in html
    assert "Tu cuestionario" not in html and "Sesión" not in html


def test_staff_member_chooses_spanish_on_the_account_page(login: Any, owner: Any) -> None:
    client = login(owner)
    response = client.post(reverse("account-language"), {"language": "es"})
    assert response.status_code == 302
    assert StaffProfile.objects.get(user=owner).language == "es"
    html = client.get(reverse("account")).content.decode()
    assert '<html lang="es"' in html
    caseload = client.get(reverse("caseload")).content.decode()
    assert "Tus casos" in caseload and "Cerrar sesión" in caseload and "Log out" not in caseload
    # An unknown language is refused with a message, and nothing changes.
    bad = client.post(reverse("account-language"), {"language": "xx"}, follow=True)
    assert StaffProfile.objects.get(user=owner).language == "es"
    assert bad.status_code == 200
    # Kept across log-ins (stored on the profile, copied to the session at log-in).
    client.logout()
    client = login(owner)
    assert '<html lang="es"' in client.get(reverse("account")).content.decode()


def test_staff_pages_use_the_clinic_time_zone(login: Any, owner: Any, clinic: Any) -> None:
    clinic.time_zone = "America/Mexico_City"
    clinic.save(update_fields=["time_zone"])
    seen: list[str] = []

    def view_zone(*_: Any, **__: Any) -> None:
        seen.append(timezone.get_current_timezone_name())

    client = login(owner)
    template_rendered.connect(view_zone)
    try:
        client.get(reverse("caseload"))
    finally:
        template_rendered.disconnect(view_zone)
    assert seen and seen[0] == "America/Mexico_City"
    assert timezone.get_current_timezone_name() == "UTC"  # ends with the request


def test_spanish_client_graduation_summary_and_pdf(
    client: Any, spanish: Any, episode: Any, goals: list[Any], add_session: Any, tmp_path: Path
) -> None:
    for days, mood in ((40, 3), (30, 5), (20, 7)):
        record_checkin(
            add_session(days_ago=days),
            {"goals": 8, "tasks": 8, "bond": 9, "overall": 8},
            {"mood": mood, "daily": mood, "connection": mood, "coping": mood},
        )
    open_link(client, "graduation", episode)
    page = client.get(reverse("journey-client")).content.decode()
    assert '<html lang="es"' in page and "Tu recorrido con Harbour Clinic" in page
    assert "Tu puntuación en el cuestionario de bienestar subió 4 puntos" in page
    assert "Viniste a 3 sesiones entre el " in page
    keep = (spanish.clinic.name, *(g.text for g in goals))
    assert_no_english(_visible_text(page), allowed=keep)
    pdf = client.get("/j/summary.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    path = tmp_path / "summary.pdf"
    path.write_bytes(pdf.content)
    text = subprocess.run(  # poppler-utils, as the other PDF tests use
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, timeout=60
    ).stdout.decode()
    assert "Tu recorrido con Harbour Clinic" in text and "Aquí tienes siempre" in text
    assert_no_english(" ".join(text.split()), allowed=keep)


@pytest.mark.parametrize(
    ("asked", "given"), [("es", "es"), ("es-MX", "es"), ("ES", "es"), ("cy", "en"), ("", "en")]
)
def test_a_language_bordin_lacks_falls_back(asked: str, given: str) -> None:
    from bordin.web.i18n import supported

    assert supported(asked) == given


def test_alert_text_is_written_in_the_therapist_language(
    client: Any, add_session: Any, goals: list[Any], owner: Any
) -> None:
    """An alert's text is stored as written: in the language its therapist chose."""
    from bordin.web.alerts.models import Alert
    from tests.web.helpers import record_therapist_rating

    StaffProfile.objects.filter(user=owner).update(language="es")
    session = add_session(days_ago=0)
    record_therapist_rating(session, {"goals": 9, "tasks": 9, "bond": 9}, owner)
    _, token = CheckinLink.issue(session)
    client.get(f"/c/{token}")
    client.get("/c/")
    data = checkin_post(goals, alliance__goals="6", alliance__tasks="7", alliance__bond="7")
    assert client.post("/c/", data).status_code == 200
    from bordin.web.delivery.worker import drain

    assert drain() >= 1  # the divergence rule runs in the worker (alerts.tasks)
    detail = Alert.objects.get(kind="divergence").detail
    assert detail == (
        f"En la sesión {session.number} valoraste objetivos, tareas y vínculo con 9.0 de media; "
        "la persona les dio 6.7."
    )
