"""Languages and time zones of pages (issue 14; docs/translating.md).

* Staff pages: the language a staff member chose on their account page
  (``StaffProfile.language``), else the browser's (Django's ``LocaleMiddleware``); the clinic's
  time zone (``Clinic.time_zone``). :class:`StaffLocaleMiddleware` activates both.
* Client pages (check-in ``/c/``, journey ``/j/``, unsubscribe): the client's
  ``preferred_language`` and the client's time zone (:func:`client_zone`), whatever the browser
  says: :func:`activate_for_client` in those views.
* Emails and text messages to a client: the same, around rendering (:func:`for_client`).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from bordin.web.clinic.models import Client, StaffProfile


def supported(code: str | None) -> str:
    """``code`` if Bordin has it (exactly or by its primary subtag: ``es-MX`` gives ``es``),
    else the default language (``settings.LANGUAGE_CODE``)."""
    codes = [c for c, _ in settings.LANGUAGES]
    wanted = (code or "").strip().lower()
    if wanted in codes:
        return wanted
    primary = wanted.split("-")[0]
    return primary if primary in codes else settings.LANGUAGE_CODE


def zone_named(name: object) -> zoneinfo.ZoneInfo | None:
    """The IANA time zone ``name``, or ``None`` for none or an unknown name (the server's)."""
    if not isinstance(name, str) or not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def client_zone(client: Client) -> zoneinfo.ZoneInfo | None:
    """The client's own time zone when set, else their clinic's."""
    return zone_named(client.time_zone or client.clinic.time_zone)


def activate_for_client(request: HttpRequest, client: Client) -> None:
    """Show this request's pages in the client's language and time zone."""
    language = supported(client.preferred_language)
    translation.activate(language)
    request.LANGUAGE_CODE = language
    zone = client_zone(client)
    if zone is not None:
        timezone.activate(zone)


@contextmanager
def for_client(client: Client) -> Iterator[None]:
    """Render a message to ``client`` (email, text) in their language and time zone."""
    zone = client_zone(client)
    with translation.override(supported(client.preferred_language)):
        if zone is None:
            yield
            return
        with timezone.override(zone):
            yield


#: Session keys: the staff member's chosen language and their clinic's time zone, copied from
#: the database at log-in (and when changed), so that pages need no extra query.
SESSION_LANGUAGE = "bordin_language"
SESSION_TIME_ZONE = "bordin_time_zone"


def remember_for_staff(request: HttpRequest, profile: StaffProfile | None) -> None:
    """Copy a staff member's language and clinic time zone into their session."""
    if profile is None:
        return
    request.session[SESSION_LANGUAGE] = profile.language
    request.session[SESSION_TIME_ZONE] = profile.clinic.time_zone


class StaffLocaleMiddleware:
    """After authentication: a staff member's chosen language and their clinic's time zone."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with restored():
            session = getattr(request, "session", None)
            if session is not None and request.user.is_authenticated:
                language = session.get(SESSION_LANGUAGE)
                if language:
                    language = supported(language)
                    translation.activate(language)
                    request.LANGUAGE_CODE = language
                zone = zone_named(session.get(SESSION_TIME_ZONE))
                if zone is not None:
                    timezone.activate(zone)
            return with_language_header(self.get_response(request))


def with_language_header(response: HttpResponse) -> HttpResponse:
    """``Content-Language``: the language the page was rendered in."""
    response.headers.setdefault("Content-Language", translation.get_language())
    return response


@contextmanager
def restored() -> Iterator[None]:
    """What a request activates (language, time zone) ends with it."""
    before = translation.get_language()
    try:
        yield
    finally:
        timezone.deactivate()
        if before:
            translation.activate(before)
        else:
            translation.deactivate()
