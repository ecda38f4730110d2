"""A clinic runs Bordin from its browser (issue 9), end to end in Chromium.

The admin invites a therapist; the therapist enrols (password, authenticator with a code
computed here, recovery codes) and logs in; the admin adds a client for them, closes the
episode as "dropped out", exports the client and erases them. Afterwards no page or export
shows the client, and the raw database holds none of their name or free text.
"""

from __future__ import annotations

import io
import re
import zipfile
from base64 import b32decode
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.browser.conftest import make_staff
from tests.browser.pages import axe_problems, describe, log_in
from tests.web.test_operations_rights import raw_database_text

NAME = "Philippa Oyelaran-Wick"
EMAIL = "philippa.ow@example.org"
PASSWORD = "juniper kettle harbour 19"  # noqa: S105 - test fixture


@pytest.mark.django_db(transaction=True)
def test_admin_runs_the_clinic_from_the_browser(
    new_context: Callable[..., Any],
    server: str,
    clinic: Any,
    axe_source: str,
    screenshot_dir: Path,
) -> None:
    admin = make_staff("kim-admin", clinic, role="clinic_admin")
    page = new_context().new_page()
    log_in(page, admin.username)

    # Invite a therapist.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Staff").click()
    page.locator('[data-action="invite-staff"]').click()
    page.get_by_label("First name").fill("Ada")
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_label("Role").select_option("therapist")
    with page.expect_navigation():
        page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_role("heading", name="Invitation sent")).to_be_visible()
    link = re.search(r"https?://\S+/enrol/\S+", mail.outbox[-1].body)
    assert link, mail.outbox[-1].body

    # The therapist enrols: password, then the authenticator before anything else.
    ada = new_context().new_page()
    ada.goto(link.group(0))
    ada.get_by_label("New password", exact=True).fill(PASSWORD)
    ada.get_by_label("New password confirmation").fill(PASSWORD)
    with ada.expect_navigation():
        ada.get_by_role("button", name="Choose this password").click()
    assert "/account/2fa/setup/" in ada.url
    ada.goto("/")
    assert "/account/2fa/setup/" in ada.url  # no other page before the second factor
    secret = ada.locator("[data-otp-secret]").inner_text().replace(" ", "")
    key = b32decode(secret + "=" * (-len(secret) % 8))
    ada.get_by_label("Code from the app").fill(f"{TOTP(key).token():06d}")
    with ada.expect_navigation():
        ada.get_by_role("button", name="Confirm").click()
    expect(ada.locator("[data-recovery-codes] li")).to_have_count(10)
    with ada.expect_navigation():
        ada.get_by_role("link", name="I have saved my codes: continue").click()
    with ada.expect_navigation():
        ada.get_by_role("button", name="Log out").click()
    log_in(ada, "ada@example.org", PASSWORD)
    expect(ada.get_by_role("heading", name="Your caseload")).to_be_visible()

    # The staff page lists her with her second factor (README screenshot, with two colleagues).
    from django.contrib.auth import get_user_model

    supervisor = make_staff("sam-okafor", clinic, role="supervisor")
    get_user_model().objects.filter(pk=supervisor.pk).update(first_name="Sam", last_name="Okafor")
    supervisor.staff.supervisees.add(get_user_model().objects.get(username="ada@example.org"))
    make_staff("robin-lindqvist", clinic)
    page.goto("/staff/")
    row = page.locator('[data-staff="ada@example.org"]')
    expect(row.locator("[data-second-factor]")).to_have_text("Set up")
    problems = axe_problems(page, axe_source)
    assert not problems, describe(problems)
    page.screenshot(path=str(screenshot_dir / "staff.png"), full_page=True)

    # The admin adds a client for her, with contact email and consent.
    page.goto("/")
    page.locator('[data-action="add-client"]').click()
    page.get_by_label("Display name").fill(NAME)
    page.get_by_label("Therapist").select_option(label="Ada Lovelace (ada@example.org)")
    page.get_by_label("Contact email").fill(EMAIL)
    page.get_by_label("Consents to be contacted by email").check()
    problems = axe_problems(page, axe_source)
    assert not problems, describe(problems)
    with page.expect_navigation():
        page.locator('[data-action="add-client"]').click()
    expect(page.get_by_role("heading", name=NAME)).to_be_visible()
    client_url = page.url

    ada.goto("/")
    expect(ada.get_by_role("link", name=NAME)).to_be_visible()

    # The admin closes the episode as "dropped out".
    page.locator('[data-action="manage-client"]').click()
    page.get_by_label("Ending reason").select_option("dropped_out")
    with page.expect_navigation():
        page.locator('[data-action="close-episode"]').click()
    expect(page.locator('[data-ending-reason="dropped_out"]')).to_be_visible()

    # Export everything, then erase.
    with page.expect_download() as download:
        page.locator('[data-action="export-client"]').click()
    exported = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert NAME in exported.read(exported.namelist()[0]).decode()
    page.locator('[data-action="erase-client"]').click()
    page.get_by_label("Type ERASE to confirm").fill("ERASE")
    with page.expect_navigation():
        page.locator('[data-action="erase"]').click()
    expect(page.get_by_text("erased")).to_be_visible()

    # Nothing shows the client any more, and the database holds none of it.
    for who in (page, ada):
        who.goto("/")
        assert NAME not in who.content()
    response = page.goto(client_url)
    assert response is not None and response.status == 404
    export = page.request.get(client_url + "export/")
    assert export.status == 404
    raw = raw_database_text()
    for secret_text in (NAME, EMAIL, "Philippa"):
        assert secret_text not in raw


@pytest.mark.django_db(transaction=True)
def test_admin_imports_clients_after_a_preview(
    new_context: Callable[..., Any], server: str, clinic: Any, tmp_path: Path, axe_source: str
) -> None:
    from bordin.web.clinic.models import Client

    admin = make_staff("kim-admin", clinic, role="clinic_admin")
    make_staff("ada", clinic)
    page = new_context().new_page()
    log_in(page, admin.username)
    bad = tmp_path / "bad.csv"
    bad.write_bytes("\ufeffdisplay_name;therapist\nAmy B.;nobody\n".encode())
    good = tmp_path / "good.csv"
    good.write_text(
        "display_name;therapist;contact_email;consent_email\n"
        "Amy B.;ada;amy@example.org;yes\nBo C.;ada;;no\n",
        encoding="utf-8",
    )
    page.goto("/clients/import/")
    page.set_input_files("#id_file", str(bad))
    with page.expect_navigation():
        page.get_by_role("button", name="Check the file (preview)").click()
    expect(page.locator('[data-problem-row="2"]')).to_contain_text("No active therapist")
    page.set_input_files("#id_file", str(good))
    with page.expect_navigation():
        page.get_by_role("button", name="Check the file (preview)").click()
    expect(page.locator("[data-import-preview]")).to_contain_text("Bo C.")
    problems = axe_problems(page, axe_source)
    assert not problems, describe(problems)
    assert not Client.objects.exists()
    with page.expect_navigation():
        page.locator('[data-action="confirm-import"]').click()
    assert sorted(Client.objects.values_list("display_name", flat=True)) == ["Amy B.", "Bo C."]
    assert Client.objects.get(display_name="Amy B.").contact_email == "amy@example.org"
