"""Staff pages (issue 9): invite, enrol with a forced second factor, roles, deactivate, reset."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client as DjangoClient
from django_otp.plugins.otp_totp.models import TOTPDevice

from bordin.web.accounts.second_factor import VERIFIED_AT_KEY
from bordin.web.audit.models import AuditEvent
from bordin.web.clinic.models import Client, StaffProfile
from bordin.web.operations.models import StaffInvite
from tests.web.conftest import PASSWORD
from tests.web.helpers import login_verified, totp_code, totp_device

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "plum orchard lantern 42"  # noqa: S105 - test fixture


def invite(client: Any, **extra: Any) -> str:
    """Invite Ada as a therapist; the enrolment link from the email."""
    data = {"first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.org"}
    data.update({"role": "therapist", **extra})
    response = client.post("/staff/invite/", data)
    assert response.status_code == 200, response.content.decode()
    body = mail.outbox[-1].body
    match = re.search(r"http://testserver(/enrol/\S+)", body)
    assert match, body
    return match.group(1)


def test_staff_list_shows_role_second_factor_and_invite_button(
    login: Any, admin: Any, owner: Any, supervisor: Any
) -> None:
    totp_device(owner)
    html = login(admin).get("/staff/").content.decode()
    assert 'data-action="invite-staff"' in html
    assert 'data-staff="owner"' in html and 'data-staff="supervisor"' in html
    assert "Supervisor" in html and "Not set up" in html and "Set up" in html


def test_only_a_clinic_admin_sees_staff(login: Any, owner: Any, outsider: Any, admin: Any) -> None:
    assert login(owner).get("/staff/").status_code == 403
    assert 'data-staff="owner"' not in login(outsider).get("/staff/").content.decode()
    assert login(outsider).get(f"/staff/{owner.pk}/").status_code == 404


def test_invitation_is_single_use_hashed_and_forces_the_second_factor(
    login: Any, admin: Any, owner: Any
) -> None:
    link = invite(login(admin), supervisees=[])
    token = link.rsplit("/", 1)[1]
    assert len(token) >= 43  # 256 bits, URL-safe base64
    row = StaffInvite.objects.get()
    assert token not in row.token_hash and row.email == "ada@example.org"
    assert (row.expires_at - row.created_at).total_seconds() == 72 * 3600

    browser = DjangoClient()
    page = browser.get(link)
    assert page.status_code == 200 and "ada@example.org" in page.content.decode()
    weak = browser.post(link, {"new_password1": "short", "new_password2": "short"})
    assert weak.status_code == 400 and not get_user_model().objects.filter(
        username="ada@example.org"
    )
    done = browser.post(link, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/account/2fa/setup/"
    user = get_user_model().objects.get(username="ada@example.org")
    assert user.staff.role == "therapist" and user.staff.clinic_id == admin.staff.clinic_id
    # Before the second factor is set up, no other page opens.
    assert browser.get("/").status_code == 302
    assert browser.get("/").headers["Location"].startswith("/account/2fa/setup/")
    # The link works once.
    assert DjangoClient().get(link).status_code == 404
    # Setting up the authenticator shows the recovery codes.
    assert "Set up your second factor" in browser.get("/account/2fa/setup/").content.decode()
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    codes = browser.post("/account/2fa/setup/", {"code": totp_code(device)})
    assert "Your recovery codes" in codes.content.decode()
    assert browser.get("/").status_code == 200


def test_revoked_and_expired_invitations_do_not_work(login: Any, admin: Any) -> None:
    c = login(admin)
    link = invite(c)
    row = StaffInvite.objects.get()
    assert c.post(f"/staff/invites/{row.pk}/revoke/").status_code == 302
    assert DjangoClient().get(link).status_code == 404
    row2, token = StaffInvite.create_with_token(
        hours=0, clinic=row.clinic, first_name="B", email="b@example.org", role="therapist"
    )
    assert DjangoClient().get(f"/enrol/{token}").status_code == 404
    assert row2.state == "expired"


def test_invite_errors_are_clear(login: Any, admin: Any, owner: Any) -> None:
    c = login(admin)
    bad = c.post("/staff/invite/", {"first_name": "", "email": "not-an-email", "role": "x"})
    html = bad.content.decode()
    assert bad.status_code == 400 and "Enter an email address" in html
    owner.username = "taken@example.org"
    owner.save()
    dup = c.post(
        "/staff/invite/", {"first_name": "T", "email": "taken@example.org", "role": "therapist"}
    )
    assert "already has an account" in dup.content.decode()
    assert not StaffInvite.objects.exists()


def test_change_role_and_supervisees(login: Any, admin: Any, owner: Any, colleague: Any) -> None:
    c = login(admin)
    response = c.post(
        f"/staff/{colleague.pk}/", {"role": "supervisor", "supervisees": [str(owner.pk)]}
    )
    assert response.status_code == 302
    colleague.staff.refresh_from_db()
    assert colleague.staff.role == "supervisor"
    assert list(colleague.staff.supervisees.all()) == [owner]
    c.post(f"/staff/{colleague.pk}/", {"role": "therapist"})
    assert not colleague.staff.supervisees.exists()
    assert (
        AuditEvent.objects.filter(object_id=str(colleague.pk), detail__contains="role").count() == 2
    )


def test_the_last_active_admin_stays(login: Any, admin: Any) -> None:
    c = login(admin)
    demote = c.post(f"/staff/{admin.pk}/", {"role": "therapist"})
    assert demote.status_code == 400 and "last active clinic admin" in demote.content.decode()
    c.post(f"/staff/{admin.pk}/deactivate/")
    admin.refresh_from_db()
    admin.staff.refresh_from_db()
    assert admin.is_active and admin.staff.role == "clinic_admin"


def test_deactivate_ends_every_session_and_lists_clients(
    login: Any, admin: Any, owner: Any, client_record: Any
) -> None:
    theirs = login_verified(DjangoClient(), owner)
    assert theirs.get("/").status_code == 200
    c = login(admin)
    c.post(f"/staff/{owner.pk}/deactivate/")
    owner.refresh_from_db()
    assert not owner.is_active
    assert theirs.get("/").headers["Location"].startswith("/login/")
    page = c.get(f"/staff/{owner.pk}/").content.decode()
    assert "Reassign these clients" in page and "Client A" in page
    assert Client.objects.filter(therapist=owner).exists()  # records stay
    again = DjangoClient().post("/login/", {"username": "owner", "password": PASSWORD})
    assert again.status_code == 200  # the form again: an inactive user cannot log in


def test_reset_second_factor_needs_a_recent_code_and_is_audited(admin: Any, owner: Any) -> None:
    totp_device(owner)
    c = login_verified(DjangoClient(), admin)
    refused = c.post(f"/staff/{owner.pk}/reset-2fa/", {})
    assert refused.status_code == 400 and "last 10 minutes" in refused.content.decode()
    assert TOTPDevice.objects.filter(user=owner).exists()
    ok = c.post(f"/staff/{owner.pk}/reset-2fa/", {"code": totp_code(totp_device(admin))})
    assert ok.status_code == 302
    assert not TOTPDevice.objects.filter(user=owner).exists()
    event = AuditEvent.objects.filter(object_type="user", object_id=str(owner.pk)).first()
    assert event is not None and "owner" in event.detail and "clinic-admin" in event.detail
    # Within the next 10 minutes no new code is needed.
    session = c.session
    assert time.time() - session[VERIFIED_AT_KEY] < 60
    assert c.post(f"/staff/{owner.pk}/reset-2fa/", {}).status_code == 302
    # At the next log-in the staff member must set up an authenticator again.
    theirs = DjangoClient()
    theirs.post("/login/", {"username": "owner", "password": PASSWORD})
    assert theirs.get("/").headers["Location"].startswith("/account/2fa/setup/")


def test_a_non_admin_cannot_manage_staff(login: Any, owner: Any, colleague: Any) -> None:
    c = login(owner)
    assert c.post(f"/staff/{colleague.pk}/", {"role": "clinic_admin"}).status_code == 404
    assert c.post(f"/staff/{colleague.pk}/deactivate/").status_code == 404
    assert StaffProfile.objects.get(user=colleague).role == "therapist"
