"""Real-browser tests: Debian's Chromium driven by Playwright against pytest-django's live server.

Django is configured exactly as for ``tests/web`` (its ``pytest_configure`` is reused, so
``pytest tests/browser`` works alone and together with the rest of the tree); the database is
SQLite in memory, shared with the live server's thread. Playwright never downloads a browser:
``/usr/bin/chromium`` must exist (CI installs it), otherwise every test here fails.

Screenshots for the README go to a temporary directory, or to ``docs/screenshots`` when
``BORDIN_SCREENSHOTS=1`` is set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import (  # noqa: F401 - fixtures and the Django set-up are shared
    PASSWORD,
    add_session,
    client_record,
    clinic,
    episode,
    goals,
    make_staff,
    owner,
    pytest_configure,
)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
AXE = REPO / "build" / "npm" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "en-GB",
}
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}, "locale": "en-GB"}
TIMEOUT_MS = 10_000


@pytest.fixture(scope="package")
def browser(django_db_setup: None) -> Iterator[Any]:
    """One headless Chromium for the package (the test database exists before it starts)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package "
            "(the browser tests never download one).",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread; the ORM calls of the
    # tests are still synchronous and sequential with the browser, so allow them.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            chromium = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def server(live_server: Any) -> str:
    """The live server's base URL, ``http://localhost:<port>``.

    Settings stay as in production: Chromium treats localhost as a secure context, so it keeps
    the session and CSRF cookies even though they are marked Secure.
    """
    return str(live_server.url)


def csp_violations(messages: list[str]) -> list[str]:
    """Console messages in which Chromium reports a Content-Security-Policy violation."""
    return [m for m in messages if "Content Security Policy" in m]


@pytest.fixture
def console() -> list[str]:
    """Every console message of every page opened by ``new_context`` in this test."""
    return []


@pytest.fixture
def new_context(browser: Any, server: str, console: list[str]) -> Iterator[Callable[..., Any]]:
    """Open browser contexts (``phone=True`` for the phone profile); all closed afterwards.

    Console messages are collected into ``console``; a Content-Security-Policy violation on
    any page fails the test (a blocked style or script would break the page for real users).
    """
    opened: list[Any] = []

    def make(*, phone: bool = False, **options: Any) -> Any:
        context = browser.new_context(base_url=server, **(PHONE if phone else DESKTOP), **options)
        context.set_default_timeout(TIMEOUT_MS)
        context.on("console", lambda message: console.append(message.text))
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()
    assert not csp_violations(console), f"Content-Security-Policy violations: {console}"


@pytest.fixture(scope="session")
def axe_source() -> str:
    if not AXE.is_file():
        pytest.fail(
            f"axe-core not found at {AXE.relative_to(REPO)}: run `make test`, which installs it "
            "(npm install --prefix build/npm axe-core@4.14.1).",
            pytrace=False,
        )
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``docs/screenshots`` with ``BORDIN_SCREENSHOTS=1``, else a temporary directory."""
    if os.environ.get("BORDIN_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")
