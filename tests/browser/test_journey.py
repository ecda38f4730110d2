"""The client's whole journey in real Chromium: intake, fit check, re-match, check-ins, ending.

Screenshots (``BORDIN_SCREENSHOTS=1``): ``fit-check.png`` (phone) and ``graduation.png``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from bordin.web.clinic.models import Client, GoalRating, Session
from bordin.web.journey.models import FitCheck, RematchRequest
from tests.browser.pages import answer_checkin, axe_problems, describe, log_in, send
from tests.web.conftest import make_staff
from tests.web.helpers import record_checkin

PAST = "The last counsellor kept telling me what to do & never asked what I wanted."


def no_serious_problems(page: Any, axe_source: str, where: str) -> None:
    problems = axe_problems(page, axe_source)
    assert not problems, f"axe-core, {where}:\n{describe(problems)}"


def link_from(page: Any, purpose: str) -> str:
    field = page.locator(f'[data-journey-link="{purpose}"]')
    expect(field).to_be_visible()
    return str(field.input_value())


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def tick(page: Any, name: str, value: str) -> None:
    page.locator(f'input[name="{name}"][value="{value}"]').check()


def pdf_pages(pdf: Path, out: Path) -> list[Path]:
    """Render every page of the PDF with poppler's pdftoppm; the PNG files, in order."""
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", str(pdf), str(out / "page")], check=True, timeout=60
    )
    return sorted(out.glob("page*.png"))


def is_blank(png: Path) -> bool:
    from PIL import Image

    with Image.open(png) as image:
        lo, _hi = image.convert("L").getextrema()
    return bool(lo > 245)


@pytest.mark.django_db(transaction=True)
def test_the_whole_journey(
    new_context: Callable[..., Any],
    server: str,
    client_record: Any,
    episode: Any,
    owner: Any,
    screenshot_dir: Path,
    axe_source: str,
    tmp_path: Path,
) -> None:
    clinic = client_record.clinic
    second = make_staff("second", clinic)
    second.first_name, second.last_name = "Robin", "Lindqvist"
    second.save()
    admin = make_staff("clinic-admin", clinic, role="clinic_admin")
    owner.first_name = "Alex"
    owner.save()

    # 1. The first therapist sends an intake link before the first session.
    therapist = new_context().new_page()
    log_in(therapist, owner.username)
    therapist.goto(f"/clients/{client_record.pk}/")
    with therapist.expect_navigation():
        therapist.locator('[data-action="intake-link"]').click()
    intake_url = link_from(therapist, "intake")

    # 2. The client fills in the intake on their phone, mentioning an unhelpful past therapy.
    phone = new_context(phone=True).new_page()
    phone.goto(intake_url)
    assert phone.url == f"{server}/j/", "the token must leave the address bar"
    expect(phone.get_by_role("heading", name="Before your first session")).to_be_visible()
    assert fits_the_screen(phone)
    no_serious_problems(phone, axe_source, "intake")
    tick(phone, "problem_areas", "low_mood")
    tick(phone, "problem_areas", "sleep")
    phone.get_by_label("In your own words").fill("Everything feels heavy since the move.")
    phone.get_by_label("First goal").fill("Sleep through the night")
    phone.get_by_label("Second goal").fill("Call my sister every week")
    tick(phone, "formats", "video")
    phone.get_by_label("Yes, and it was unhelpful or harmful").check()
    phone.get_by_label("what happened in your earlier therapy").fill(PAST)
    phone.get_by_label("What would you want to be different").fill("Being listened to first.")
    send(phone, tap=True)
    expect(phone.get_by_role("heading", name="Thank you")).to_be_visible()

    # 3. The therapist sees the hesitant-start note and the caseload badge.
    therapist.goto(f"/clients/{client_record.pk}/")
    note = therapist.locator("[data-hesitant-start]")
    expect(note).to_be_visible()
    expect(note).to_contain_text(PAST)
    expect(note).to_contain_text("courage")
    therapist.goto("/")
    expect(therapist.locator('[data-alert-kind="hesitant-start"]')).to_be_visible()

    # 4. First session, then the fit-check link.
    therapist.goto(f"/clients/{client_record.pk}/")
    with therapist.expect_navigation():
        therapist.get_by_role("button", name="Record session").click()
    therapist.goto(f"/clients/{client_record.pk}/")
    with therapist.expect_navigation():
        therapist.locator('[data-action="fit-link"]').click()
    fit_url = link_from(therapist, "fit_check")

    # 5. The client asks to try someone else, without sharing the answers.
    phone.goto(fit_url)
    expect(phone.get_by_role("heading", name="How was your first session?")).to_be_visible()
    expect(phone.locator(".reassure")).to_contain_text("Many people try more than one therapist")
    assert fits_the_screen(phone)
    no_serious_problems(phone, axe_source, "fit check")
    for name, value in (("heard", 4), ("warmth", 5), ("honest", 3)):
        phone.locator(f'label[for="id_{name}_{value}"]').click()
    phone.get_by_label("Try someone else").check()
    phone.evaluate("window.scrollTo(0, 0)")
    phone.screenshot(path=screenshot_dir / "fit-check.png", full_page=True)
    send(phone, tap=True)
    expect(phone.locator("[data-rematch-requested]")).to_be_visible()
    fit = FitCheck.objects.get()
    assert (fit.choice, fit.share_with_therapist) == ("switch", False)

    # The first therapist never sees the answers.
    therapist.goto(f"/clients/{client_record.pk}/")
    expect(therapist.locator("[data-fit-private]")).to_be_visible()
    expect(therapist.locator("[data-fit-answers]")).to_have_count(0)

    # 6. The clinic admin assigns a second therapist from the re-match list.
    office = new_context().new_page()
    log_in(office, admin.username)
    office.get_by_role("link", name="Re-match").click()
    with office.expect_navigation():
        office.get_by_role("link", name=client_record.display_name).click()
    expect(office.locator("[data-shortlist]")).to_be_visible()
    office.locator("#id_therapist").select_option(label="Robin Lindqvist")
    with office.expect_navigation():
        office.locator('[data-action="assign"]').click()
    new_client = Client.objects.get(therapist=second)
    assert office.url == f"{server}/clients/{new_client.pk}/"
    assert RematchRequest.objects.get().status == "assigned"

    # The first therapist has no access to the new episode.
    response = therapist.goto(f"/clients/{new_client.pk}/")
    assert response is not None and response.status == 404

    # 7. The second therapist sees the carried-over intake and records the first session.
    robin = new_context().new_page()
    log_in(robin, second.username)
    robin.goto(f"/clients/{new_client.pk}/")
    expect(robin.locator("[data-hesitant-start]")).to_be_visible()
    expect(robin.locator("[data-shared-goals]")).to_contain_text("Sleep through the night")
    with robin.expect_navigation():
        robin.get_by_role("button", name="Record session").click()
    checkin_url = str(robin.locator("[data-new-link]").input_value())

    # The client checks in after it (on the phone) ...
    phone.goto(checkin_url)
    new_episode = new_client.episodes.get()
    goal_ids = list(new_episode.goals.filter(active=True).values_list("pk", flat=True))
    answer_checkin(phone, goal_ids, tap=True)
    send(phone, tap=True)
    expect(phone.get_by_role("heading", name="Thank you")).to_be_visible()
    expect(phone.locator("[data-client-goals]")).to_contain_text("Sleep through the night")

    # ... and over the following weeks things get better (stored directly, for speed).
    Session.objects.filter(episode=new_episode).update(date=date.today() - timedelta(days=28))
    new_episode.start = date.today() - timedelta(days=28)
    new_episode.save()
    for k, level in enumerate((6, 7, 8, 8), start=2):
        s = Session.objects.create(
            episode=new_episode, number=k, date=date.today() - timedelta(days=7 * (5 - k))
        )
        record_checkin(
            s,
            {"goals": 8, "tasks": 8, "bond": 9, "overall": 8},
            {"mood": level, "daily": level, "connection": level, "coping": level, "safety": 0},
        )
        for j, gid in enumerate(goal_ids):
            GoalRating.objects.create(session=s, goal_id=gid, rating=3 + k + j)

    # 8. The ending suggestion, with the graduation PDF.
    robin.goto(f"/clients/{new_client.pk}/")
    ending = robin.locator("[data-ending-ready]")
    expect(ending).to_contain_text("Consider planning the ending")
    expect(ending).to_contain_text("reliable improvement")
    with robin.expect_download() as download:
        robin.locator('[data-action="graduation-pdf"]').click()
    pdf = tmp_path / "graduation.pdf"
    download.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    pages = pdf_pages(pdf, tmp_path)
    assert len(pages) >= 1
    assert not any(is_blank(p) for p in pages), "a blank page in the graduation PDF"

    # 9. The client gets the summary through a private link.
    with robin.expect_navigation():
        robin.locator('[data-action="graduation-link"]').click()
    summary_url = link_from(robin, "graduation")
    reader = new_context().new_page()
    reader.set_viewport_size({"width": 820, "height": 1100})
    reader.goto(summary_url)
    # A GET only shows the button (mail scanners and previews do not use the link up).
    no_serious_problems(reader, axe_source, "graduation summary button")
    with reader.expect_navigation():
        reader.get_by_role("button", name="Open my summary").click()
    expect(reader.get_by_role("heading", name="You are welcome back")).to_be_visible()
    expect(reader.locator("[data-plain-change]")).to_contain_text("bigger than those day-to-day")
    no_serious_problems(reader, axe_source, "graduation summary")
    reader.screenshot(path=screenshot_dir / "graduation.png", full_page=True)
