"""The client's check-in in a real browser: a phone, no JavaScript, accessibility."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic import analysis
from bordin.web.clinic.models import GoalRating, Response
from tests.browser.conftest import csp_violations
from tests.browser.pages import COMMENT, answer_checkin, axe_problems, choose, describe, send

MISSING = "alliance-bond"


def question_text(name: str) -> str:
    code, item_id = name.split("-", 1)
    return next(i.text for i in analysis.registry()[code].items if i.id == item_id)


@pytest.fixture
def token(add_session: Callable[..., Any], owner: Any, goals: list[Any]) -> str:
    """A fresh check-in link for today's session of a client with two goals."""
    _, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    return token


def open_link(page: Any, server: str, token: str) -> None:
    page.goto(f"/c/{token}")
    assert page.url == f"{server}/c/", "the token must leave the address bar"
    expect(page.get_by_role("heading", name="Your check-in", level=1)).to_be_visible()


def fits_the_screen(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize("safety", ["no", "sometimes"])
def test_checkin_on_a_phone(
    new_context: Callable[..., Any],
    server: str,
    token: str,
    goals: list[Any],
    screenshot_dir: Path,
    safety: str,
) -> None:
    page = new_context(phone=True).new_page()
    open_link(page, server, token)
    assert token not in page.content()
    assert fits_the_screen(page), "the check-in scrolls sideways on a phone"
    if safety == "no":
        # (Clicked, not tapped: a tap leaves its highlight in the picture.)
        choose(page, "alliance-goals", 8, tap=False)
        choose(page, "alliance-tasks", 7, tap=False)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=screenshot_dir / "checkin-phone.png")

    # One required answer missing: refused, with everything else kept.
    goal_ids = [g.pk for g in goals]
    given = answer_checkin(page, goal_ids, tap=True, skip=MISSING, safety=safety)
    send(page, tap=True)
    summary = page.locator("#error-summary")
    expect(summary).to_contain_text("Please check your answers")
    error = page.locator(f"#{MISSING}-error")
    expect(error).to_have_text("Please choose a number from 0 to 10.")
    # The summary links to the question that needs an answer.
    expect(summary.get_by_role("link")).to_have_text(question_text(MISSING))
    expect(error).not_to_be_in_viewport()
    summary.get_by_role("link").tap()
    expect(error).to_be_in_viewport()
    expect(page.locator(f"fieldset:has(#{MISSING}-error) legend")).to_be_in_viewport()
    expect(page.locator(f"fieldset:has(#{MISSING}-error)")).to_have_attribute(
        "aria-describedby", f"{MISSING}-error {MISSING}-anchors"
    )
    for name, index in given.items():
        expect(page.locator(f"#id_{name}_{index}")).to_be_checked()
    expect(page.locator("#id_alliance-better")).to_have_value(COMMENT)
    assert fits_the_screen(page)
    assert Response.objects.count() == 0

    # Fixed and sent: the thank-you page, one response of each kind.
    choose(page, MISSING, 9, tap=True)
    send(page, tap=True)
    expect(page.get_by_role("heading", name="Thank you", level=1)).to_be_visible()
    assert page.url == f"{server}/c/"
    alliance = Response.objects.get(instrument__code="alliance")
    assert alliance.answers["bond"] == 9.0
    assert alliance.free_text == COMMENT
    assert Response.objects.filter(instrument__code="wellbeing").count() == 1
    assert GoalRating.objects.count() == len(goals)
    crisis = page.locator("[data-crisis]")
    if safety == "no":
        expect(crisis).to_have_count(0)
        assert not Alert.objects.exists()
    else:
        expect(crisis).to_be_visible()
        expect(crisis).to_contain_text("Harbour duty line: 0100 111 222")
        expect(crisis).to_contain_text("Out of hours: 999")
        assert Alert.objects.get().kind == "risk"

    # The link is spent: opening it again (a new tab, same phone) gets the neutral page.
    again = page.context.new_page()
    response = again.goto(f"/c/{token}")
    assert response is not None and response.status == 404
    expect(again.get_by_role("heading", level=1)).to_have_text("This link isn't valid")
    assert Response.objects.filter(instrument__code="alliance").count() == 1


def test_checkin_works_without_javascript(
    new_context: Callable[..., Any], server: str, token: str, goals: list[Any]
) -> None:
    page = new_context(java_script_enabled=False).new_page()
    open_link(page, server, token)
    given = answer_checkin(page, [g.pk for g in goals], skip="wellbeing-mood")
    send(page)
    expect(page.locator("#wellbeing-mood-error")).to_be_visible()
    for name, index in given.items():
        expect(page.locator(f"#id_{name}_{index}")).to_be_checked()
    expect(page.locator("#id_alliance-better")).to_have_value(COMMENT)
    choose(page, "wellbeing-mood", 4, tap=False)
    send(page)
    expect(page.get_by_role("heading", name="Thank you", level=1)).to_be_visible()
    assert Response.objects.get(instrument__code="wellbeing").answers["mood"] == 4.0
    assert Response.objects.filter(instrument__code="alliance").count() == 1


def test_checkin_pages_have_no_serious_accessibility_problems(
    new_context: Callable[..., Any], server: str, token: str, goals: list[Any], axe_source: str
) -> None:
    page = new_context(phone=True).new_page()
    open_link(page, server, token)
    found = {"form": axe_problems(page, axe_source)}
    answer_checkin(page, [g.pk for g in goals], skip=MISSING, safety="often")
    send(page)
    expect(page.locator("#error-summary")).to_be_visible()
    found["form with errors"] = axe_problems(page, axe_source)
    choose(page, MISSING, 5, tap=False)
    send(page)
    expect(page.locator("[data-crisis]")).to_be_visible()
    found["thank you with crisis contacts"] = axe_problems(page, axe_source)
    problems = {where: describe(p) for where, p in found.items() if p}
    assert not problems, "axe-core found serious or critical problems:\n" + "\n".join(
        f"{where}:\n{text}" for where, text in problems.items()
    )


def test_checkin_pages_obey_the_content_security_policy(
    new_context: Callable[..., Any],
    server: str,
    token: str,
    goals: list[Any],
    console: list[str],
) -> None:
    page = new_context(phone=True).new_page()
    first = page.goto(f"/c/{token}")
    assert first is not None
    policy = first.header_value("content-security-policy") or ""
    assert "script-src 'self'" in policy and "style-src 'self'" in policy
    # No referrer, even on the form: bordin.web.csrf accepts the resulting "Origin: null".
    assert first.header_value("referrer-policy") == "no-referrer"
    # The stylesheet applied (a blocked one would leave the page unstyled).
    assert page.evaluate("getComputedStyle(document.body).margin") != "8px"
    answer_checkin(page, [g.pk for g in goals])
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        send(page)
    assert posted.value.header_value("referrer-policy") == "no-referrer"  # the thank-you page
    expect(page.get_by_role("heading", name="Thank you", level=1)).to_be_visible()
    assert not csp_violations(console), console
    # The listener does see violations: an inline style attribute is refused and reported.
    page.evaluate("document.body.setAttribute('style', 'color: red')")
    page.wait_for_timeout(200)
    assert csp_violations(console), "a CSP violation went unnoticed"
    console.clear()  # (deliberate; the fixture fails the test on any violation left here)


def test_answer_buttons_are_at_least_44px_wide_on_a_phone(
    new_context: Callable[..., Any], server: str, token: str
) -> None:
    page = new_context(phone=True).new_page()
    open_link(page, server, token)
    widths = page.eval_on_selector_all(
        ".scale .option", "els => els.map(e => e.getBoundingClientRect().width)"
    )
    assert len(widths) >= 11
    assert min(widths) >= 44, f"narrowest 0-10 answer is {min(widths):.1f} px wide"
    assert fits_the_screen(page)
