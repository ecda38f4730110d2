"""The client's pages: response headers, lookup rate limit, tokens kept out of the logs."""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from bordin.web.checkins.models import CheckinLink
from bordin.web.logfilters import RedactTokens, redact
from tests.web.helpers import checkin_post

pytestmark = pytest.mark.django_db

INVALID_TEXT = "This link isn't valid"
TOO_MANY_TEXT = "Please wait a moment"
CSP_DIRECTIVES = (
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'none'",
)


@pytest.fixture
def session(add_session: Any) -> Any:
    return add_session(days_ago=0)


@pytest.fixture
def token(session: Any, owner: Any, goals: list[Any]) -> str:
    return CheckinLink.issue(session, created_by=owner)[1]


@pytest.fixture
def limit(settings: Any) -> int:
    settings.BORDIN_CHECKIN_RATE_LIMIT = 3
    settings.BORDIN_CHECKIN_RATE_WINDOW_SECONDS = 60
    return 3


def assert_common_headers(response: Any) -> None:
    csp = response["Content-Security-Policy"]
    for directive in CSP_DIRECTIVES:
        assert directive in csp, (directive, csp)
    assert "unsafe-inline" not in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "camera=()" in response["Permissions-Policy"]
    assert "geolocation=()" in response["Permissions-Policy"]


def assert_client_headers(response: Any) -> None:
    """No copy in any cache, no referrer (header and, for HTML, meta tag)."""
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"
    assert_common_headers(response)
    if response.content:  # (a redirect and a 405 have no body)
        html = response.content.decode()
        assert '<meta name="referrer" content="no-referrer">' in html
        assert not re.search(r"<script|<style|\sstyle=|\son[a-z]+=", html), "inline code/style"


# ---------------------------------------------------------------------------------- headers


def test_every_client_page_has_private_headers(
    client: Any, token: str, goals: list[Any], limit: int
) -> None:
    # The link: 302 to /c/, token out of the address bar.
    start = client.get(f"/c/{token}")
    assert start.status_code == 302
    assert_client_headers(start)
    # The form, and the form again with errors.
    form = client.get("/c/")
    assert form.status_code == 200
    assert_client_headers(form)
    refused = client.post("/c/", checkin_post(goals, alliance__bond=None))
    assert refused.status_code == 400
    assert_client_headers(refused)
    # The thank-you page.
    thanks = client.post("/c/", checkin_post(goals))
    assert thanks.status_code == 200 and b"Thank you" in thanks.content
    assert_client_headers(thanks)
    # The same link again, an unknown link, and /c/ without a link: the invalid-link page.
    for url in (f"/c/{token}", "/c/not-a-real-token", "/c/"):
        client.cookies.clear()
        invalid = client.get(url)
        assert invalid.status_code == 404 and INVALID_TEXT in invalid.content.decode()
        assert_client_headers(invalid)
    # A method the link does not take.
    assert_client_headers(client.post(f"/c/{token}"))
    # Too many failed lookups: the 429 page.
    for _ in range(limit):
        client.get("/c/guess")
    too_many = client.get("/c/guess")
    assert too_many.status_code == 429
    assert_client_headers(too_many)


def test_staff_pages_have_security_headers(client: Any, owner: Any) -> None:
    anonymous = client.get("/login/")
    assert_common_headers(anonymous)
    assert anonymous["Referrer-Policy"] == "same-origin"
    client.force_login(owner)
    caseload = client.get("/")
    assert caseload.status_code == 200
    assert_common_headers(caseload)
    # Health data: no copy in the browser's cache for the next person at a shared computer.
    assert "no-store" in caseload["Cache-Control"]
    assert not re.search(r"<script|<style|\sstyle=", caseload.content.decode())


def test_templates_have_no_inline_script_or_style() -> None:
    """CSP allows no inline code or style: keep every template free of it."""
    from pathlib import Path

    import bordin.web

    root = Path(bordin.web.__file__).parent / "templates"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.html")
        if re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", path.read_text())
    ]
    assert not offenders


def test_one_csrf_exemption_only_the_one_click_unsubscribe() -> None:
    """RFC 8058: a mail program's one-click unsubscribe POST has no CSRF token (the signed
    link is the secret), so that one view is exempt; it checks every other POST itself
    (tests/web/test_delivery_unsubscribe.py)."""
    from pathlib import Path

    import bordin.web

    root = Path(bordin.web.__file__).parent
    found = {
        str(p.relative_to(root)): p.read_text().count("@csrf_exempt")
        for p in root.rglob("*.py")
        if "csrf_exempt" in p.read_text()
    }
    assert found == {"delivery/views.py": 1}
    views = (root / "delivery" / "views.py").read_text()
    assert re.search(r"\n@csrf_exempt\n(@[^\n]+\n)*def unsubscribe\(", views)


# ------------------------------------------------------------------------------- rate limit


def test_failed_lookups_are_limited_and_then_every_answer_is_the_same(
    client: Any, token: str, limit: int
) -> None:
    for n in range(limit):
        assert client.get(f"/c/guess-{n}").status_code == 404
    over_unknown = client.get("/c/another-guess")
    over_valid = client.get(f"/c/{token}")
    assert over_unknown.status_code == over_valid.status_code == 429
    assert over_unknown.content == over_valid.content
    assert TOO_MANY_TEXT in over_valid.content.decode()
    assert over_valid["Retry-After"] == "60"
    assert "bordin_checkin_link" not in client.session
    # Another address is not affected.
    other = type(client)(REMOTE_ADDR="192.0.2.7")
    assert other.get(f"/c/{token}").status_code == 302


def test_valid_lookups_do_not_count(client: Any, token: str, limit: int) -> None:
    for _ in range(limit * 2):
        assert client.get(f"/c/{token}").status_code == 302


def test_ipv6_counts_per_64_network(client: Any, token: str, limit: int) -> None:
    for n in range(limit):
        guesser = type(client)(REMOTE_ADDR=f"2001:db8:1:2::{n + 1}")
        assert guesser.get("/c/guess").status_code == 404
    neighbour = type(client)(REMOTE_ADDR="2001:db8:1:2:ffff::1")
    assert neighbour.get(f"/c/{token}").status_code == 429
    elsewhere = type(client)(REMOTE_ADDR="2001:db8:1:3::1")
    assert elsewhere.get(f"/c/{token}").status_code == 302


def test_limit_ends_with_the_window(client: Any, token: str, settings: Any) -> None:
    settings.BORDIN_CHECKIN_RATE_LIMIT = 1
    settings.BORDIN_CHECKIN_RATE_WINDOW_SECONDS = 1
    assert client.get("/c/guess").status_code == 404
    assert client.get(f"/c/{token}").status_code == 429
    time.sleep(1.2)
    assert client.get(f"/c/{token}").status_code == 302


def test_limit_zero_turns_it_off(client: Any, token: str, settings: Any) -> None:
    settings.BORDIN_CHECKIN_RATE_LIMIT = 0
    for _ in range(30):
        assert client.get("/c/guess").status_code == 404
    assert client.get(f"/c/{token}").status_code == 302


def test_expired_and_used_links_count_as_failures(client: Any, session: Any, limit: int) -> None:
    links = [CheckinLink.issue(session) for _ in range(limit)]
    for link, _ in links:
        link.expires_at = timezone.now() - timedelta(seconds=1)
        link.save()
    for _, token in links:
        assert client.get(f"/c/{token}").status_code == 404
    _, fresh = CheckinLink.issue(session)
    assert client.get(f"/c/{fresh}").status_code == 429


# ---------------------------------------------------------------------------------- logging


def test_tokens_never_reach_the_log(
    client: Any, token: str, limit: int, caplog: pytest.LogCaptureFixture
) -> None:
    unknown = "Zx" * 22  # looks like a real token
    with caplog.at_level(logging.INFO):
        assert client.get(f"/c/{unknown}").status_code == 404
        assert client.post(f"/c/{token}").status_code == 405
        for _ in range(limit):
            client.get(f"/c/{unknown}")
        assert client.get(f"/c/{token}").status_code == 429
    messages = [r.getMessage() for r in caplog.records]
    assert "Not Found: /c/<token>" in messages
    assert "Method Not Allowed (POST): /c/<token>" in messages
    assert "Too Many Requests: /c/<token>" in messages
    assert token not in caplog.text
    assert unknown not in caplog.text


def test_console_handler_redacts_every_logger() -> None:
    config = django_settings.LOGGING
    assert "redact_tokens" in config["handlers"]["console"]["filters"]
    for name in ("django.request", "django.server", "django.security.csrf"):
        assert "redact_tokens" in config["loggers"][name]["filters"]
    record = logging.LogRecord(
        "bordin.anything",
        logging.WARNING,
        __file__,
        1,
        '"GET /c/%s HTTP/1.1" 404',
        ("s3cr3t",),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '"GET /c/<token> HTTP/1.1" 404'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Not Found: /c/abc", "Not Found: /c/<token>"),
        ("/c/", "/c/"),
        ("/c/?next=1", "/c/?next=1"),
        ("/c/<token>", "/c/<token>"),
        ("GET /prefix/c/a%2Fb HTTP/1.1", "GET /prefix/c/<token> HTTP/1.1"),
        ("/j/" + "a" * 43, "/j/<token>"),
        ("/i/" + "a" * 43, "/i/<redacted>"),
        ("?token=" + "B" * 40, "?token=<redacted>"),
        ("a perfectly_normal_identifier_that_is_very_long_indeed", None),
    ],
)
def test_redact(text: str, expected: str | None) -> None:
    assert redact(text) == (text if expected is None else expected)


# ---------------------------------------------------------------------------------- auditing


def test_failed_lookups_are_audited_per_address_and_window_without_the_token(
    client: Any, token: str, limit: int
) -> None:
    from bordin.web.audit.models import AuditEvent

    guess = "Zx" * 22
    for _ in range(limit + 3):
        client.get(f"/c/{guess}")
    client.get(f"/j/{guess}")
    events = list(AuditEvent.objects.filter(action="denied").order_by("pk"))
    assert [e.object_type for e in events] == ["checkin_link", "checkin_link"]
    assert "limit reached" in events[1].detail
    assert {e.ip_address for e in events} == {"127.0.0.1"}
    assert all(guess not in f"{e.path} {e.detail}" for e in events)
    assert events[0].path == "/c/<token>"
    # Another address opens its own window (and a journey link is named as such).
    type(client)(REMOTE_ADDR="192.0.2.8").get(f"/j/{guess}")
    last = AuditEvent.objects.filter(action="denied").order_by("-pk").first()
    assert last is not None
    assert (last.object_type, last.ip_address) == ("journey_link", "192.0.2.8")


def test_the_counters_are_in_the_database(client: Any, limit: int) -> None:
    """Shared by every worker process (and host), unlike the per-process default cache."""
    from django.core.cache import cache

    from bordin.web.guard.models import RateCounter

    for n in range(limit):
        client.get(f"/c/guess-{n}")
    cache.clear()
    assert RateCounter.objects.get().count == limit
    assert client.get("/c/guess").status_code == 429
