"""``Cache-Control: no-store`` on every page that does not choose its own caching, and a
``Permissions-Policy`` on every response.

Staff pages show health data (caseloads, scores, comments); a browser must not keep them on
disk or in its back/forward cache, where the next person at a shared computer could find them
after log-out (OWASP ASVS 8.2.1). Static files (WhiteNoise) and any response that sets its own
``Cache-Control`` are left alone. Client pages get the same header, and more, from
:mod:`bordin.web.checkins.privacy`.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import add_never_cache_headers

#: Browser features no Bordin page uses, switched off for the page and anything it embeds.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
        "browsing-topics",
    )
)


class NoStoreMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not response.has_header("Cache-Control"):
            add_never_cache_headers(response)
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
