"""Delivery end to end in a real browser: the therapist records a session, the worker sends
the check-in to a real SMTP server in this process (aiosmtpd), the client follows the link
from the received email on a phone and completes it; no reminder follows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from bordin.web.clinic.models import Response
from bordin.web.delivery.models import MeasurePlan, OutboxMessage
from bordin.web.delivery.worker import drain, tick
from tests.browser.pages import answer_checkin, axe_problems, log_in, send
from tests.web.delivery_helpers import SmtpServer, link_in, unsubscribe_in

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def smtp(settings: Any, server: str) -> Iterator[SmtpServer]:
    with SmtpServer() as smtp_server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = smtp_server.port
        settings.BORDIN_BASE_URL = server
        yield smtp_server


def work() -> None:
    tick()
    drain()


def test_recorded_session_is_emailed_and_completed_on_a_phone(
    new_context: Callable[..., Any],
    smtp: SmtpServer,
    server: str,
    owner: Any,
    client_record: Any,
    goals: list[Any],
    axe_source: str,
) -> None:
    client_record.contact_email = "client.a@example.org"
    client_record.consent_email = True
    client_record.save()
    staff = new_context().new_page()
    log_in(staff, owner.username)
    staff.goto(f"/clients/{client_record.pk}/")
    with staff.expect_navigation():
        staff.get_by_role("button", name="Record session").click()
    qr = staff.locator('[data-action="checkin-qr"] svg')
    expect(qr).to_be_visible()
    assert not axe_problems(staff, axe_source)

    work()
    checkin = next(m for m in smtp.inbox.wait_for(2) if "session check-in" in m["Subject"])
    phone = new_context(phone=True).new_page()
    phone.goto(link_in(checkin))
    assert phone.url == f"{server}/c/", "the token must leave the address bar"
    expect(phone.get_by_role("heading", name="Your check-in", level=1)).to_be_visible()
    answer_checkin(phone, [g.pk for g in goals], tap=True)
    send(phone, tap=True)
    expect(phone.get_by_role("heading", name="Thank you", level=1)).to_be_visible()
    assert Response.objects.filter(respondent="client").count() == 2

    received = len(smtp.inbox.messages)
    with time_machine.travel(timezone.now() + timedelta(hours=25), tick=True):
        work()
    reminders = OutboxMessage.objects.filter(purpose="reminder", delivery__kind="checkin")
    assert not reminders.exists()
    assert [m["Subject"] for m in smtp.inbox.messages[received:]] in (
        [],
        ["Reminder: Harbour Clinic: your first-session questionnaire"],
    )

    # The unsubscribe link from the same email works on the phone, without logging in.
    phone.goto(unsubscribe_in(checkin))
    with phone.expect_navigation():
        phone.get_by_role("button", name="Stop these messages").tap()
    expect(phone.locator("[data-unsubscribed]")).to_be_visible()
    assert client_record.unsubscribes.count() == 1


def test_episode_plan_page_from_the_client_page(
    new_context: Callable[..., Any],
    server: str,
    owner: Any,
    client_record: Any,
    episode: Any,
    axe_source: str,
) -> None:
    """The therapist gives the episode its own plan and goes back to the clinic's."""
    page = new_context().new_page()
    log_in(page, owner.username)
    page.goto(f"/clients/{client_record.pk}/")
    page.get_by_role("link", name="What is sent when").click()
    expect(page.locator('[data-plan-state="clinic"]')).to_be_visible()
    assert not axe_problems(page, axe_source)
    codes = page.get_by_role("textbox", name="After each attended session")
    page.get_by_label("Fit check after session 1").uncheck()
    codes.fill("alliance, nonsense")
    with page.expect_navigation():
        page.get_by_role("button", name="Save this episode's plan").click()
    expect(page.locator(".field-error")).to_contain_text("Unknown instrument code(s): nonsense")
    assert not axe_problems(page, axe_source)
    codes.fill("alliance, wellbeing, phq9")
    with page.expect_navigation():
        page.get_by_role("button", name="Save this episode's plan").click()
    expect(page.locator('[data-plan-state="episode"]')).to_be_visible()
    row = page.locator('[data-plan-field="checkin_codes"] [data-plan-episode]')
    expect(row).to_have_text("alliance, wellbeing, phq9")
    expect(page.locator('[data-plan-field="send_fit_check"] [data-plan-episode]')).to_have_text(
        "no"
    )
    assert not axe_problems(page, axe_source)
    with page.expect_navigation():
        page.locator('[data-action="plan-use-clinic-default"]').click()
    expect(page.locator('[data-plan-state="clinic"]')).to_be_visible()
    assert not MeasurePlan.objects.filter(episode=episode).exists()
