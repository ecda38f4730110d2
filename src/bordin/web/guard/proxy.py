"""Refuse to run behind a reverse proxy without knowing the clients' real addresses.

Behind a proxy every request reaches Bordin from the proxy's address. Unless the proxy passes
the client's address (``X-Forwarded-For``, overwritten by the proxy) and Bordin trusts it
(``BORDIN_TRUST_X_FORWARDED_FOR``), the log-in lockout (per user name *and* address) and the
link-lookup limit (per address) treat every client as one: a single outsider locks a user name
out for everyone and blocks every client's valid link (issue 15).

Two guards:

* system check ``bordin.E004`` (run by ``check``, ``check --deploy`` and ``bordin serve``):
  ``BORDIN_BEHIND_PROXY`` is on but ``BORDIN_TRUST_X_FORWARDED_FOR`` is off;
* :class:`ProxyAddressMiddleware`, for an install that does not say it is behind a proxy:
  with ``DEBUG`` off, a request from a loopback or private address that carries proxy headers
  (``X-Forwarded-*``, ``Forwarded``, ``X-Real-IP``) but no trusted ``X-Forwarded-For``
  answers 503 and logs an error saying what to set.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core import checks
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string

logger = logging.getLogger("bordin.proxy")

#: Request headers (``META`` keys) that only a proxy adds.
PROXY_HEADERS = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_FORWARDED",
    "HTTP_X_REAL_IP",
)

HINT = (
    "Make the proxy overwrite X-Forwarded-For with the client's address (nginx: "
    "`proxy_set_header X-Forwarded-For $remote_addr;`) and set "
    "BORDIN_TRUST_X_FORWARDED_FOR=true (docs/deploy.md, section 4)."
)


def proxied(meta: dict[str, Any]) -> bool:
    """Whether the request carries any header a reverse proxy adds."""
    return any(meta.get(name) for name in PROXY_HEADERS)


@checks.register(checks.Tags.security)
def check_client_address(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if getattr(settings, "BORDIN_BEHIND_PROXY", False) and not getattr(
        settings, "BORDIN_TRUST_X_FORWARDED_FOR", False
    ):
        return [
            checks.Error(
                "BORDIN_BEHIND_PROXY is on but BORDIN_TRUST_X_FORWARDED_FOR is off: every "
                "request would seem to come from the proxy, so one outsider could lock user "
                "names out and block clients' links for everyone.",
                hint=HINT,
                id="bordin.E004",
            )
        ]
    return []


def _from_nearby(meta: dict[str, Any]) -> bool:
    try:
        address = ipaddress.ip_address(meta.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def misconfigured(request: HttpRequest) -> bool:
    """A proxy in front of Bordin, but no client address Bordin may use."""
    meta = request.META
    if settings.DEBUG or not proxied(meta) or not _from_nearby(meta):
        return False
    trusted = getattr(settings, "BORDIN_TRUST_X_FORWARDED_FOR", False)
    return not (trusted and meta.get("HTTP_X_FORWARDED_FOR"))


class ProxyAddressMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if misconfigured(request):
            logger.error(
                "Request through a reverse proxy without a trusted client address. %s", HINT
            )
            body = render_to_string("guard/proxy_misconfigured.html")
            return HttpResponse(body, status=503)
        return self.get_response(request)
