"""The staff second factor: one TOTP authenticator app plus one-time recovery codes.

Built on django-otp. A user has at most one confirmed :class:`TOTPDevice` (the authenticator
app) and one :class:`StaticDevice` holding their unused recovery codes. A session is verified
once :func:`django_otp.login` has stored the device that accepted a code (session key
``otp_device_id``); :class:`~bordin.web.accounts.middleware.StaffSessionMiddleware` sends every
authenticated but unverified request to set-up or verification.
"""

from __future__ import annotations

import ipaddress
import time
from base64 import b32encode
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import django_otp
import segno
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

#: How many recovery codes a user gets at a time.
RECOVERY_CODE_COUNT = 10
TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"


def totp_device(user: Any, *, confirmed: bool = True) -> TOTPDevice | None:
    """The user's authenticator app (``confirmed=False``: one being set up), if any."""
    device: TOTPDevice | None = (
        TOTPDevice.objects.filter(user_id=user.pk, confirmed=confirmed).order_by("-pk").first()
    )
    return device


def recovery_device(user: Any) -> StaticDevice | None:
    device: StaticDevice | None = (
        StaticDevice.objects.filter(user_id=user.pk, confirmed=True).order_by("-pk").first()
    )
    return device


def remaining_recovery_codes(user: Any) -> int:
    return int(StaticToken.objects.filter(device__user_id=user.pk, device__confirmed=True).count())


def pending_device(user: Any) -> TOTPDevice:
    """The unconfirmed authenticator being set up (the same one until it is confirmed)."""
    device = totp_device(user, confirmed=False)
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_NAME, confirmed=False)
    return device


def secret_for_manual_entry(device: TOTPDevice) -> str:
    """The key in base32, in groups of four, as authenticator apps ask for it."""
    secret = b32encode(device.bin_key).decode("ascii").rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(device: TOTPDevice) -> str:
    """The ``otpauth://`` URL of ``device`` as an inline SVG QR code (no image library)."""
    qr = segno.make(device.config_url, error="m")
    svg: str = qr.svg_inline(scale=4, border=4, title="QR code for your authenticator app")
    return svg


@transaction.atomic
def confirm(device: TOTPDevice) -> list[str]:
    """Make ``device`` the user's only authenticator; return their new recovery codes."""
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user_id=device.user_id).exclude(pk=device.pk).delete()
    return new_recovery_codes(device.user)


@transaction.atomic
def new_recovery_codes(user: Any) -> list[str]:
    """Replace the user's recovery codes with :data:`RECOVERY_CODE_COUNT` fresh ones."""
    StaticDevice.objects.filter(user_id=user.pk).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


def normalise(code: str) -> str:
    """Codes as typed: spaces and dashes dropped, letters lower-cased."""
    return "".join(ch for ch in code if ch not in " -\t").lower()


@dataclass(frozen=True)
class Outcome:
    """What a submitted code did: the device that accepted it, or why not."""

    device: Any = None
    #: Set when the device refuses attempts for now (too many wrong codes in a row).
    wait_until: datetime | None = None

    @property
    def recovery_code(self) -> bool:
        return isinstance(self.device, StaticDevice)


def check_code(user: Any, code: str, device: Any = None) -> Outcome:
    """Verify ``code`` (six digits: the authenticator; otherwise: a recovery code).

    A recovery code that matches is deleted, so it works once. Every device throttles: after
    ``n`` wrong codes in a row it refuses the next attempts for ``2**(n-1)`` seconds
    (django-otp's exponential back-off), whatever the code.
    """
    code = normalise(code)
    if device is None:
        device = totp_device(user) if code.isdigit() else recovery_device(user)
    if device is None or not code or len(code) > 16:
        return Outcome()
    allowed, why = device.verify_is_allowed()
    if not allowed:
        return Outcome(wait_until=(why or {}).get("locked_until"))
    with transaction.atomic():
        fresh = type(device).objects.select_for_update().filter(pk=device.pk).first()
        if fresh is not None and fresh.user_id == user.pk and fresh.verify_token(code):
            return Outcome(device=fresh)
    return Outcome()


#: Session key: when (Unix time) the second factor was last passed in this session.
VERIFIED_AT_KEY = "bordin_2fa_at"
#: Sensitive actions (resetting a colleague's second factor, erasing a client) need the
#: second factor passed within this many minutes.
RECENT_MINUTES = 10


def mark_verified(request: HttpRequest, device: Any) -> None:
    """Record in the session that the second factor was passed (and give it a new key)."""
    django_otp.login(request, device)
    request.session.cycle_key()
    request.session[VERIFIED_AT_KEY] = int(time.time())


def passed_recently(request: HttpRequest, minutes: int = RECENT_MINUTES) -> bool:
    """Whether the second factor was passed in this session within the last ``minutes``."""
    if demo_skip(request):
        return True
    at = request.session.get(VERIFIED_AT_KEY)
    return isinstance(at, int | float) and 0 <= time.time() - at <= minutes * 60


def demo_skip(request: HttpRequest) -> bool:
    """Whether this request may skip the second factor: the demo on the same machine only.

    All three must hold: ``BORDIN_DEMO_SKIP_2FA`` (set by ``bordin demo`` only), ``DEBUG``, and
    a request from a loopback address that carries no proxy header (``X-Forwarded-For``,
    ``-Proto``, ``-Host``, ``Forwarded``, ``X-Real-IP``).
    """
    if not (settings.DEBUG and getattr(settings, "BORDIN_DEMO_SKIP_2FA", False)):
        return False
    from bordin.web.guard.proxy import PROXY_HEADERS

    meta = request.META
    if any(name in meta for name in PROXY_HEADERS):  # any proxy header at all: no skip
        return False
    try:
        return ipaddress.ip_address(meta.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


def passed(request: HttpRequest) -> bool:
    """Whether the request's (authenticated) user passed the second factor in this session."""
    is_verified = getattr(request.user, "is_verified", None)
    return bool(is_verified is not None and is_verified()) or demo_skip(request)
