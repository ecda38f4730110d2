"""Staff authentication: password hashing and rules, lockout, sessions, the second factor."""

from __future__ import annotations

import importlib
import re
import time
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from bordin.web.accounts import second_factor
from bordin.web.accounts.middleware import EXEMPT_URL_NAMES, LOGIN_AT_KEY
from bordin.web.audit.models import AuditEvent
from tests.web.conftest import PASSWORD
from tests.web.helpers import VerifiedClient, totp_code, totp_device
from tests.web.test_permission_matrix import (  # noqa: F401 - `world` is a fixture used here
    MATRIX,
    REQUESTS,
    World,
    fingerprint,
    world,
)

pytestmark = pytest.mark.django_db

VERIFY = "/account/2fa/verify/"
SETUP = "/account/2fa/setup/"
LOCKED = "Log-in locked for now"
WRONG_PASSWORD = "Your username and password didn't match"  # noqa: S105 - a page message


def log_in(client: Any, username: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/login/", {"username": username, "password": password}, **extra)


def unverified(user: Any) -> Client:
    """A browser that logged in with the password only."""
    c = Client()
    c.force_login(user)
    return c


# --- passwords ----------------------------------------------------------------------------------


def test_argon2_hashes_new_passwords_and_upgrades_old_ones(settings: Any, owner: Any) -> None:
    real = importlib.import_module("bordin.web.settings")
    assert real.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    assert "django.contrib.auth.hashers.PBKDF2PasswordHasher" in real.PASSWORD_HASHERS
    settings.PASSWORD_HASHERS = real.PASSWORD_HASHERS  # the tests otherwise use a fast hasher
    assert make_password("a long enough passphrase").startswith("argon2$argon2id$")

    owner.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    owner.save()
    assert log_in(Client(), "owner").status_code == 302
    owner.refresh_from_db()
    assert owner.password.startswith("argon2$")


def test_password_validators_are_on(settings: Any, owner: Any) -> None:
    real = importlib.import_module("bordin.web.settings")
    names = [v["NAME"].rsplit(".", 1)[1] for v in real.AUTH_PASSWORD_VALIDATORS]
    assert names == [
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
        "LowVarietyPasswordValidator",
    ]
    with pytest.raises(ValidationError, match="at least 12 characters"):
        validate_password("Tr0ub4dor&3", owner)  # 11 characters
    with pytest.raises(ValidationError):
        validate_password("password1234", owner)  # common
    with pytest.raises(ValidationError):
        validate_password("314159265358", owner)  # digits only
    validate_password("lantern quietly orbits", owner)


# --- lockout ------------------------------------------------------------------------------------


def test_lockout_after_five_failures_same_for_unknown_users(owner: Any) -> None:
    c = Client()
    bodies = {}
    for username in ("owner", "nobody"):
        for attempt in range(1, 6):
            response = log_in(c, username, "wrong password")
            if attempt < 5:
                assert response.status_code == 200
                assert WRONG_PASSWORD in response.content.decode()
        assert response.status_code == 429
        bodies[username] = re.sub(r"<time[^>]*>[^<]*</time>", "", response.content.decode())
        assert LOCKED in bodies[username]
        assert "clinic admin can unlock" in bodies[username]
        assert re.search(
            r"Try again after <time datetime=[^>]+>\d\d:\d\d</time>", response.content.decode()
        )
    assert bodies["owner"] == bodies["nobody"]  # no hint whether the user name exists

    # Even the right password is refused now, from this address; another address may log in.
    response = log_in(c, "owner")
    assert response.status_code == 429
    assert "_auth_user_id" not in c.session
    assert log_in(Client(REMOTE_ADDR="10.0.0.2"), "owner").status_code == 302

    # Every failure and the lockout are in the audit log.
    failed = AuditEvent.objects.filter(action="login_failed", username="owner")
    assert failed.filter(detail="locked out after 5 failed attempts").exists()
    assert failed.filter(detail="").count() == 6

    # The lockout ends after 15 minutes.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timezone.timedelta(minutes=16))
    assert log_in(c, "owner").status_code == 302


def test_clinic_admin_unlocks_a_colleague(client: Any, owner: Any, admin: Any) -> None:
    c = Client()
    for _ in range(5):
        log_in(c, "owner", "wrong password")
    assert log_in(c, "owner").status_code == 429
    client.force_login(admin)
    page = client.get("/account/").content.decode()
    assert 'data-locked-user="owner"' in page
    response = client.post(reverse("unlock", args=["owner"]))
    assert response.status_code == 302
    assert log_in(c, "owner").status_code == 302
    assert AuditEvent.objects.filter(
        action="update", user_id=admin.pk, object_id=str(owner.pk), detail__startswith="unlocked"
    ).exists()


# --- sessions -----------------------------------------------------------------------------------


def test_session_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.conf import settings

    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert not settings.SESSION_SAVE_EVERY_REQUEST  # web.session_renewal renews them
    assert settings.BORDIN_SESSION_RENEW_SECONDS == 60
    assert settings.SESSION_COOKIE_HTTPONLY
    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    assert settings.SESSION_COOKIE_SECURE  # DEBUG is off
    monkeypatch.setenv("BORDIN_IDLE_TIMEOUT_MINUTES", "10")
    module = importlib.import_module("bordin.web.settings")
    try:
        assert importlib.reload(module).SESSION_COOKIE_AGE == 600
    finally:
        monkeypatch.undo()
        importlib.reload(module)


def test_idle_session_is_renewed_on_each_request(client: Any, owner: Any, settings: Any) -> None:
    settings.BORDIN_SESSION_RENEW_SECONDS = 0
    client.force_login(owner)
    client.get("/")
    first = client.session.get_expiry_date()
    time.sleep(1.1)
    client.get("/")
    assert client.session.get_expiry_date() > first


def test_idle_session_is_renewed_at_most_once_a_minute(client: Any, owner: Any) -> None:
    from django.contrib.sessions.models import Session as StoredSession

    from bordin.web.session_renewal import RENEWED_AT_KEY

    client.force_login(owner)
    client.get("/")
    key = client.session.session_key
    stored = StoredSession.objects.get(session_key=key).expire_date
    client.get("/")  # within the minute: not written again
    assert StoredSession.objects.get(session_key=key).expire_date == stored
    session = client.session
    session[RENEWED_AT_KEY] = int(time.time()) - 61  # the last renewal a minute ago
    session.save()
    before = StoredSession.objects.get(session_key=key).expire_date
    time.sleep(1.1)
    client.get("/")
    assert StoredSession.objects.get(session_key=key).expire_date > before
    assert client.session[RENEWED_AT_KEY] >= int(time.time()) - 5


def test_empty_sessions_are_not_created(client: Any) -> None:
    from django.contrib.sessions.models import Session as StoredSession

    client.cookies["sessionid"] = "x" * 32  # unknown, e.g. expired
    assert client.get("/").status_code == 302  # to the log-in page
    assert client.get("/c/").status_code == 404
    assert not StoredSession.objects.exists()


def test_session_ends_after_the_maximum_age(client: Any, owner: Any, settings: Any) -> None:
    client.force_login(owner)
    assert client.get("/").status_code == 200
    session = client.session
    session[LOGIN_AT_KEY] = int(time.time()) - settings.BORDIN_SESSION_MAX_HOURS * 3600 - 1
    session.save()
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_log_out_everywhere_ends_every_session(owner: Any, colleague: Any) -> None:
    laptop, phone, other = VerifiedClient(), VerifiedClient(), VerifiedClient()
    laptop.force_login(owner)
    phone.force_login(owner)
    other.force_login(colleague)
    assert phone.get("/").status_code == 200
    assert 'action="/account/logout-everywhere/"' in laptop.get("/account/").content.decode()

    response = laptop.post("/account/logout-everywhere/")
    assert response["Location"] == "/login/"
    for browser in (laptop, phone):
        response = browser.get("/")
        assert response.status_code == 302
        assert response["Location"].startswith("/login/?next=")
    assert other.get("/").status_code == 200  # a colleague's session is not affected
    assert AuditEvent.objects.filter(
        action="update", user_id=owner.pk, detail="logged out of every session"
    ).exists()
    phone.force_login(owner)  # logging in again starts a valid session
    assert phone.get("/").status_code == 200


# --- second factor ------------------------------------------------------------------------------


def _staff_pages() -> list[str]:
    """Every URL that sends an anonymous visitor to log in: the staff pages."""
    return sorted(name for name, row in MATRIX.items() if row["anonymous"] == "login")


@pytest.mark.parametrize("name", _staff_pages())
def test_every_staff_page_needs_the_second_factor(
    world: World,  # noqa: F811 - the permission matrix's fixture, imported above
    owner: Any,
    name: str,
) -> None:
    if name in ("2fa-setup", "2fa-verify"):
        pytest.skip("the second-factor pages themselves")
    assert name not in EXEMPT_URL_NAMES
    call = REQUESTS[name]
    totp_device(owner)
    c = unverified(owner)
    if call.before is not None:
        call.before(c, world)
    url = reverse(name, kwargs=call.kwargs(world))
    before = fingerprint()
    response = getattr(c, call.method)(url, call.data(world))
    assert response.status_code == 302, name
    assert response["Location"].startswith(VERIFY), name
    if call.method == "get":
        assert response["Location"] == f"{VERIFY}?next={url.replace('/', '%2F')}"
    assert fingerprint() == before


def test_without_an_authenticator_staff_are_sent_to_set_up(owner: Any) -> None:
    c = unverified(owner)
    response = c.get("/alerts/")
    assert response["Location"] == f"{SETUP}?next=%2Falerts%2F"
    assert c.get(VERIFY)["Location"].startswith(SETUP)


def test_set_up_confirm_and_recovery_codes_shown_once(owner: Any) -> None:
    c = unverified(owner)
    page = c.get(SETUP)
    html = page.content.decode()
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0")
    assert "<svg" in html and "<path" in html
    device = TOTPDevice.objects.get(user=owner, confirmed=False)
    assert second_factor.secret_for_manual_entry(device) in html
    assert c.get(SETUP).content.decode().count(second_factor.secret_for_manual_entry(device)) == 1

    # A wrong code does not confirm anything.
    wrong = c.post(SETUP, {"code": "12345"})
    assert "not valid" in wrong.content.decode()
    device.refresh_from_db()
    assert not device.confirmed
    device.throttle_reset()

    code = f"{TOTP(device.bin_key, device.step, device.t0, device.digits).token():06d}"
    done = c.post(SETUP, {"code": code, "next": "/alerts/"})
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(codes) == 10
    assert sorted(codes) == sorted(StaticToken.objects.values_list("token", flat=True))
    device.refresh_from_db()
    assert device.confirmed
    assert 'href="/alerts/"' in done.content.decode()
    assert c.get("/").status_code == 200  # verified
    assert AuditEvent.objects.filter(user_id=owner.pk, detail="second factor set up").exists()

    # Shown once: never again on the set-up or account pages.
    assert c.get(SETUP)["Location"] == "/account/"
    account = c.get("/account/").content.decode()
    assert not any(code in account for code in codes)
    assert "data-recovery-left>10<" in account


def test_password_alone_cannot_replace_the_authenticator(owner: Any) -> None:
    device = totp_device(owner)
    c = unverified(owner)
    assert c.get(SETUP)["Location"].startswith(VERIFY)
    assert c.post(SETUP, {"code": "123456"})["Location"].startswith(VERIFY)
    assert list(TOTPDevice.objects.filter(user=owner)) == [device]


def test_verify_with_the_authenticator(owner: Any, client_record: Any) -> None:
    device = totp_device(owner)
    c = unverified(owner)
    page = f"/clients/{client_record.pk}/"
    assert c.get(page)["Location"] == f"{VERIFY}?next=%2Fclients%2F{client_record.pk}%2F"
    form = c.get(VERIFY, {"next": page})
    assert form.status_code == 200
    assert f'value="{page}"' in form.content.decode()
    response = c.post(VERIFY, {"code": totp_code(device), "next": page})
    assert response["Location"] == page
    assert c.get(page).status_code == 200
    assert c.get(VERIFY)["Location"] == "/"  # already verified
    assert AuditEvent.objects.filter(
        action="login", user_id=owner.pk, detail="second factor passed (authenticator app)"
    ).exists()


def test_verify_gives_the_session_a_new_key(owner: Any) -> None:
    device = totp_device(owner)
    c = unverified(owner)
    before = c.session.session_key
    c.post(VERIFY, {"code": totp_code(device)})
    assert c.session.session_key != before


def test_verify_never_redirects_off_site(owner: Any) -> None:
    device = totp_device(owner)
    c = unverified(owner)
    response = c.post(VERIFY, {"code": totp_code(device), "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_a_recovery_code_works_once(owner: Any) -> None:
    totp_device(owner)
    codes = second_factor.new_recovery_codes(owner)
    first = unverified(owner)
    typed = codes[0].upper()[:4] + "-" + codes[0].upper()[4:]  # as people type it
    assert first.post(VERIFY, {"code": typed})["Location"] == "/"
    caseload = first.get("/")
    assert caseload.status_code == 200
    assert "recovery code; 9 left" in caseload.content.decode()
    assert second_factor.remaining_recovery_codes(owner) == 9

    again = unverified(owner)
    response = again.post(VERIFY, {"code": codes[0]})
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert again.get("/")["Location"].startswith(VERIFY)
    assert (
        AuditEvent.objects.filter(
            action="login", detail="second factor passed (recovery code)"
        ).count()
        == 1
    )


def test_new_recovery_codes_replace_the_old_ones(client: Any, owner: Any) -> None:
    old = second_factor.new_recovery_codes(owner)
    client.force_login(owner)
    response = client.post("/account/2fa/recovery-codes/")
    new = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    assert sorted(new) == sorted(StaticToken.objects.values_list("token", flat=True))


def test_wrong_codes_are_rejected_throttled_and_lock_out(owner: Any) -> None:
    device = totp_device(owner)
    right = totp_code(device)
    wrong = "000000" if right != "000000" else "111111"
    c = unverified(owner)
    response = c.post(VERIFY, {"code": wrong})
    assert response.status_code == 200
    assert "not valid" in response.content.decode()
    assert c.get("/")["Location"].startswith(VERIFY)
    event = AuditEvent.objects.get(action="login_failed")
    assert (event.username, event.detail, event.path) == (
        "owner",
        "wrong second-factor code",
        VERIFY,
    )
    # django-otp's back-off: straight after a wrong code even the right one is refused.
    response = c.post(VERIFY, {"code": right})
    assert "Too many wrong codes" in response.content.decode()
    assert c.get("/")["Location"].startswith(VERIFY)
    # Five failed attempts (passwords and codes together) log the user out and lock them out.
    for _ in range(3):
        response = c.post(VERIFY, {"code": wrong})
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert "_auth_user_id" not in c.session
    assert log_in(c, "owner").status_code == 429


@pytest.mark.parametrize(
    ("debug", "setting", "address", "proxied", "skipped"),
    [
        (True, True, "127.0.0.1", False, True),
        (True, True, "::1", False, True),
        (True, True, "192.168.1.20", False, False),
        (True, True, "127.0.0.1", True, False),
        (False, True, "127.0.0.1", False, False),
        (True, False, "127.0.0.1", False, False),
    ],
)
def test_demo_skips_the_second_factor_only_on_loopback_with_debug(
    settings: Any,
    owner: Any,
    debug: bool,
    setting: bool,
    address: str,
    proxied: bool,
    skipped: bool,
) -> None:
    settings.DEBUG = debug
    settings.BORDIN_DEMO_SKIP_2FA = setting
    extra = {"REMOTE_ADDR": address}
    if proxied:
        extra["HTTP_X_FORWARDED_FOR"] = "127.0.0.1"
    c = Client(**extra)
    c.force_login(owner)
    response = c.get("/")
    if skipped:
        assert response.status_code == 200
        assert "Demo mode: second factor skipped" in response.content.decode()
    else:
        assert response.status_code == 302
        assert response["Location"].startswith(SETUP)
        assert "Demo mode" not in c.get("/login/", follow=True).content.decode()


def test_demo_skip_is_off_unless_the_demo_sets_it() -> None:
    from django.conf import settings

    assert settings.BORDIN_DEMO_SKIP_2FA is False
    source = importlib.import_module("bordin.web.commands").__file__
    assert source is not None
    with open(source, encoding="utf-8") as f:
        assert 'os.environ.setdefault("BORDIN_DEMO_SKIP_2FA", "true")' in f.read()


def test_staff_without_a_profile_also_need_the_second_factor() -> None:
    stranger = get_user_model().objects.create_user("stranger", password=PASSWORD)
    response = unverified(stranger).get("/")
    assert response["Location"].startswith(SETUP)


@pytest.mark.parametrize(
    "header",
    [
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_HOST",
        "HTTP_FORWARDED",
        "HTTP_X_REAL_IP",
    ],
)
def test_demo_never_skips_the_second_factor_with_any_proxy_header(
    settings: Any, owner: Any, header: str
) -> None:
    settings.DEBUG = True
    settings.BORDIN_DEMO_SKIP_2FA = True
    c = Client(REMOTE_ADDR="127.0.0.1", **{header: "https"})
    c.force_login(owner)
    response = c.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(SETUP)
