"""Password rules and the password change page (issue 15)."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from bordin.web.accounts.passwords import LowVarietyPasswordValidator
from bordin.web.audit.models import AuditEvent
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.django_db

WEAK = [
    "aaaaaaaaaaaa",
    "abababababab",
    "abcabcabcabc",
    "123456789012",
    "abcdefghijklmn",
    "zyxwvutsrqpo",
    "1111122222",
]


@pytest.mark.parametrize("password", WEAK)
def test_low_variety_passwords_are_refused(password: str) -> None:
    with pytest.raises(ValidationError):
        validate_password(password)


def test_similar_to_the_user_name_is_refused(owner: Any) -> None:
    names = [v["NAME"].rsplit(".", 1)[1] for v in settings.AUTH_PASSWORD_VALIDATORS]
    assert "UserAttributeSimilarityValidator" in names
    owner.username = "margaret.hamilton"
    owner.first_name = "Margaret"
    with pytest.raises(ValidationError) as caught:
        validate_password("margaret.hamilton1", owner)
    assert "too similar" in str(caught.value)


def test_a_good_passphrase_passes(owner: Any) -> None:
    validate_password("river otter copper lantern", owner)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=4))
def test_any_short_unit_repeated_is_refused(unit: str) -> None:
    with pytest.raises(ValidationError):
        LowVarietyPasswordValidator().validate(unit * (24 // len(unit)))


def test_password_change_page(login: Any, owner: Any) -> None:
    client = login(owner)
    assert client.get("/account/").content.decode().count('data-action="password-change"') == 1
    assert client.get("/account/password/").status_code == 200
    bad = client.post(
        "/account/password/",
        {
            "old_password": PASSWORD,
            "new_password1": "aaaaaaaaaaaa",
            "new_password2": "aaaaaaaaaaaa",
        },
    )
    assert bad.status_code == 400
    assert 'id="error-summary"' in bad.content.decode()
    new = "river otter copper lantern"
    done = client.post(
        "/account/password/",
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert done.status_code == 302 and done["Location"] == "/account/"
    owner.refresh_from_db()
    assert owner.check_password(new)
    assert client.get("/account/").status_code == 200  # this session is still logged in
    event = AuditEvent.objects.get(detail="password changed")
    assert event.user_id == owner.pk
