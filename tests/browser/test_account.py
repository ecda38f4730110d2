"""A new staff member sets up the second factor in a real browser, then logs in with it."""

from __future__ import annotations

from base64 import b32decode
from collections.abc import Callable
from typing import Any

from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD
from tests.browser.pages import axe_problems, describe, log_in


def test_staff_set_up_the_authenticator_and_log_in_with_it(
    new_context: Callable[..., Any], server: str, owner: Any, axe_source: str
) -> None:
    page = new_context().new_page()
    page.goto("/login/")
    page.fill('input[name="username"]', owner.username)
    page.fill('input[name="password"]', PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()

    # No authenticator yet: the set-up page, with a QR code and the key to type in.
    assert page.url.startswith(f"{server}/account/2fa/setup/")
    expect(page.get_by_role("heading", name="Set up your second factor")).to_be_visible()
    expect(page.locator("[data-otp-qr] svg")).to_be_visible()
    assert page.get_by_role("navigation", name="Main").count() == 0
    problems = axe_problems(page, axe_source)
    assert not problems, describe(problems)

    # The phone's app computes the code from the key shown on the page.
    secret = page.locator("[data-otp-secret]").inner_text().replace(" ", "")
    key = b32decode(secret + "=" * (-len(secret) % 8))
    page.get_by_label("Code from the app").fill(f"{TOTP(key).token():06d}")
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.locator("[data-recovery-codes] li")).to_have_count(10)
    with page.expect_navigation():
        page.get_by_role("link", name="I have saved my codes: continue").click()
    expect(page.get_by_role("heading", name="Your caseload", level=1)).to_be_visible()

    # Next time: password, then the code from the app (through the verification page).
    with page.expect_navigation():
        page.get_by_role("button", name="Log out").click()
    log_in(page, owner.username)
    assert page.url == f"{server}/"
    with page.expect_navigation():
        page.get_by_role("link", name=owner.username).click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.locator("[data-recovery-left]")).to_have_text("10")
