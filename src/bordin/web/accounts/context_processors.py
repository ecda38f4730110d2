"""Template flags for the page frame (``base.html``)."""

from __future__ import annotations

from django.http import HttpRequest

from bordin.web.accounts import second_factor


def account(request: HttpRequest) -> dict[str, bool]:
    """``demo_skips_2fa``: show the demo banner; ``second_factor_done``: show the navigation."""
    user = getattr(request, "user", None)
    authenticated = bool(user is not None and user.is_authenticated)
    return {
        "demo_skips_2fa": second_factor.demo_skip(request),
        "second_factor_done": authenticated and second_factor.passed(request),
    }
