"""A Spanish-speaking client in real Chromium (issue 14): check-in, fit check and graduation
summary fully in Spanish and axe-clean; the therapist's page stays in English.

Screenshot (``BORDIN_SCREENSHOTS=1``): ``checkin-es.png`` (phone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Response
from bordin.web.journey.models import JourneyLink
from tests.browser.pages import answer_checkin, axe_problems, describe, log_in
from tests.web.helpers import record_checkin
from tests.web.test_i18n import ENGLISH_WORDS


def spanish_only(page: Any, keep: tuple[str, ...]) -> None:
    """No word of Bordin's English client pages in the page's visible text."""
    text = str(page.inner_text("body"))
    for own in keep:  # names and the client's own words are not ours to translate
        text = text.replace(own, "")
    found = [w for w in ENGLISH_WORDS if re.search(rf"\b{re.escape(w)}\b", text)]
    assert found == [], f"English on a Spanish page: {found}\n{text}"
    assert page.locator("html").get_attribute("lang") == "es"


def axe_clean(page: Any, axe_source: str, where: str) -> None:
    problems = axe_problems(page, axe_source)
    assert not problems, f"axe-core, {where}:\n{describe(problems)}"


@pytest.mark.django_db(transaction=True)
def test_spanish_speaking_client_sees_spanish_and_the_therapist_english(
    new_context: Callable[..., Any],
    server: str,
    client_record: Any,
    episode: Any,
    goals: list[Any],
    add_session: Any,
    owner: Any,
    screenshot_dir: Path,
    axe_source: str,
) -> None:
    client_record.preferred_language = "es"
    client_record.save(update_fields=["preferred_language"])
    owner.first_name = "Alex"
    owner.save()
    clinic = client_record.clinic.name
    keep = (clinic, "Alex", *(g.text for g in goals))
    for days, mood in ((40, 3), (30, 5), (20, 7)):
        record_checkin(
            add_session(days_ago=days),
            {"goals": 8, "tasks": 8, "bond": 9, "overall": 8},
            {"mood": mood, "daily": mood, "connection": mood, "coping": mood},
        )

    # The check-in, on a phone whose browser asks for English: the client's language wins.
    phone = new_context(phone=True).new_page()
    _, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    phone.goto(f"{server}/c/{token}")
    expect(phone.get_by_role("heading", name="Tu cuestionario")).to_be_visible()
    expect(phone.get_by_text("Hoy trabajamos en lo que yo quiero trabajar.")).to_be_visible()
    spanish_only(phone, keep)
    axe_clean(phone, axe_source, "Spanish check-in")
    phone.screenshot(path=screenshot_dir / "checkin-es.png", full_page=True)
    answer_checkin(phone, [g.pk for g in goals], tap=True)
    with phone.expect_navigation():
        phone.get_by_role("button", name="Enviar").tap()
    expect(phone.get_by_role("heading", name="Gracias")).to_be_visible()
    spanish_only(phone, keep)
    axe_clean(phone, axe_source, "Spanish thank-you page")
    assert Response.objects.filter(session__number=4).count() == 2

    # The fit check.
    _, token = JourneyLink.issue("fit_check", episode, session=episode.sessions.first())
    phone.goto(f"{server}/j/{token}")
    expect(phone.get_by_role("heading", name="¿Qué tal fue tu primera sesión?")).to_be_visible()
    spanish_only(phone, keep)
    axe_clean(phone, axe_source, "Spanish fit check")

    # The graduation summary: the button page, then the summary.
    reader = new_context().new_page()
    _, token = JourneyLink.issue("graduation", episode)
    reader.goto(f"{server}/j/{token}")
    spanish_only(reader, keep)
    axe_clean(reader, axe_source, "Spanish summary button")
    with reader.expect_navigation():
        reader.get_by_role("button", name="Abrir mi resumen").click()
    expect(
        reader.get_by_role("heading", name="Aquí tienes siempre la puerta abierta")
    ).to_be_visible()
    expect(reader.locator("[data-plain-change]")).to_contain_text("cuestionario de bienestar")
    spanish_only(reader, keep)
    axe_clean(reader, axe_source, "Spanish graduation summary")

    # The therapist's page about this client stays in English.
    therapist = new_context().new_page()
    log_in(therapist, owner.username)
    therapist.goto(f"{server}/clients/{client_record.pk}/")
    assert therapist.locator("html").get_attribute("lang") == "en"
    body = str(therapist.inner_text("body"))
    assert "Client A" in body and "Sesión" not in body and "Tu cuestionario" not in body
