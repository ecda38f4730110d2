"""The care team's side in a real browser: log in, caseload, alerts, client page, screenshots."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Client
from tests.browser.pages import answer_checkin, axe_problems, describe, log_in, send
from tests.web.helpers import record_checkin

BADGE_KINDS = {"risk", "rupture", "not-on-track", "divergence", "overdue", "hesitant-start"}


@pytest.fixture
def history(add_session: Callable[..., Any], client_record: Any, owner: Any) -> Any:
    """Three earlier check-ins of Client A, and a second client with nothing to flag."""
    for days_ago, alliance, mood in ((21, 8, 4), (14, 8, 5), (7, 9, 5)):
        answers = {"goals": alliance, "tasks": alliance, "bond": alliance, "overall": alliance}
        wellbeing = {"mood": mood, "daily": 5, "connection": 5, "coping": 5}
        record_checkin(add_session(days_ago=days_ago), answers, wellbeing)
    Client.objects.create(clinic=client_record.clinic, therapist=owner, display_name="Aaron B.")
    return client_record


def no_serious_problems(found: dict[str, list[dict[str, Any]]]) -> None:
    problems = {where: describe(p) for where, p in found.items() if p}
    assert not problems, "axe-core found serious or critical problems:\n" + "\n".join(
        f"{where}:\n{text}" for where, text in problems.items()
    )


def test_therapist_sees_acknowledges_and_follows_a_risk_alert(
    new_context: Callable[..., Any],
    server: str,
    history: Any,
    add_session: Callable[..., Any],
    goals: list[Any],
    owner: Any,
    axe_source: str,
) -> None:
    # The client reports thoughts of self-harm in today's check-in, on their phone.
    _, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    phone = new_context(phone=True).new_page()
    phone.goto(f"/c/{token}")
    answer_checkin(phone, [g.pk for g in goals], tap=True, safety="sometimes")
    send(phone, tap=True)
    expect(phone.locator("[data-crisis]")).to_be_visible()
    alert = Alert.objects.get(kind="risk")

    # The therapist logs in and lands on the caseload, the risk at the top.
    page = new_context().new_page()
    log_in(page, owner.username)
    assert page.url == f"{server}/"
    expect(page.get_by_role("heading", name="Your caseload", level=1)).to_be_visible()
    first = page.locator("table.caseload tbody tr").first
    expect(first).to_have_attribute("data-client-id", str(history.pk))
    row = page.locator(f'tr[data-client-id="{history.pk}"]')
    expect(row.locator('[data-alert-kind="risk"]')).to_have_text("Risk")
    found = {"caseload": axe_problems(page, axe_source)}

    # The open alerts are one click away; acknowledging changes the status.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Alerts").click()
    expect(page.get_by_role("heading", name="Open alerts", level=1)).to_be_visible()
    item = page.locator(f'li[data-alert-id="{alert.pk}"]')
    expect(item).to_have_attribute("data-alert-status", "new")
    expect(item.locator('[data-alert-kind="risk"]')).to_be_visible()
    found["alerts"] = axe_problems(page, axe_source)
    with page.expect_navigation():
        item.locator('[data-action="acknowledge"]').click()
    expect(page.get_by_role("status")).to_contain_text("Risk alert acknowledged.")
    expect(item).to_have_attribute("data-alert-status", "acknowledged")
    expect(item.locator('[data-action="acknowledge"]')).to_have_count(0)
    expect(item.locator('[data-action="resolve"]')).to_be_visible()
    alert.refresh_from_db()
    assert alert.status == "acknowledged"
    assert alert.acknowledged_by == owner

    # The client page shows both charts, each with a text alternative.
    item.get_by_role("link", name=history.display_name).click()
    assert page.url == f"{server}/clients/{history.pk}/"
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(2)
    for k in range(2):
        chart = charts.nth(k)
        expect(chart).to_be_visible()
        assert chart.get_attribute("role") == "img"
        assert chart.locator("title").first.text_content()
        assert chart.locator("desc").first.text_content()
    expect(page.get_by_role("img", name="Alliance", exact=False).first).to_be_visible()
    expect(
        page.locator(f'li[data-alert-id="{alert.pk}"][data-alert-status="acknowledged"]')
    ).to_be_visible()
    found["client page"] = axe_problems(page, axe_source)
    no_serious_problems(found)


def test_demo_caseload_and_client_page(
    new_context: Callable[..., Any], server: str, screenshot_dir: Path, axe_source: str
) -> None:
    """The demo clinic as a therapist sees it; these are the README's screenshots."""
    from bordin.web.demo import DEMO_PASSWORD, seed_demo

    seed_demo()
    page = new_context().new_page()
    log_in(page, "demo-therapist", DEMO_PASSWORD)
    expect(page.locator("tr[data-client-id]").first).to_be_visible()
    kinds = set(
        page.locator("table.caseload [data-alert-kind]").evaluate_all(
            "badges => badges.map(b => b.dataset.alertKind)"
        )
    )
    assert kinds == BADGE_KINDS
    page.screenshot(path=screenshot_dir / "caseload.png")
    found = {"demo caseload": axe_problems(page, axe_source)}

    # The client with an open rupture: the chart marks it, the ideas for the session show.
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.get_by_role("link", name="Ben T.").click()
    expect(page.locator("[data-suggestions]")).to_be_visible()
    expect(page.locator("#alliance-chart-figure .marker.rupture")).to_have_count(1)
    expect(page.locator("#alliance-chart-figure figcaption")).not_to_be_empty()
    page.screenshot(path=screenshot_dir / "client-page.png")
    found["demo client page"] = axe_problems(page, axe_source)
    page.goto("/alerts/?show=all")
    expect(page.locator('li[data-alert-status="resolved"]').first).to_be_visible()
    found["all alerts, with resolved ones"] = axe_problems(page, axe_source)
    no_serious_problems(found)
    for name in ("caseload.png", "client-page.png"):
        assert (screenshot_dir / name).stat().st_size < 300_000


def test_form_errors_on_the_client_page_are_where_the_eye_is(
    new_context: Callable[..., Any], server: str, history: Any, owner: Any
) -> None:
    page = new_context().new_page()
    log_in(page, owner.username)
    page.goto(f"/clients/{history.pk}/")
    form = page.locator(f'form[action="/clients/{history.pk}/sessions/#error-summary"]')
    # An empty date (a browser without date validation would send it): refused, nothing saved.
    form.evaluate("f => { f.noValidate = true; f.querySelector('[name=date]').value = ''; }")
    with page.expect_navigation():
        form.get_by_role("button", name="Record session").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_in_viewport()
    expect(summary).to_contain_text("Record a session")
    assert page.url.endswith("#error-summary")
