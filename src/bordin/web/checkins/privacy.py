"""Response headers for every page a client sees without an account (check-in links).

* ``Cache-Control: no-store`` (with Django's other never-cache headers): a shared or public
  device keeps no copy of a check-in page, its answers or the crisis contacts shown.
* ``Referrer-Policy: no-referrer``: a page whose URL may hold a token (``/c/<token>``: the
  redirect and the "link isn't valid" page) never sends its URL anywhere, not even to Bordin's
  own static files (a reverse proxy's access log records referrers).

The one exception is the check-in **form** at ``/c/``, which answers ``same-origin`` (see
:data:`FORM_REFERRER_POLICY`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

CLIENT_REFERRER_POLICY = "no-referrer"

#: The check-in form posts back to ``/c/``. Under ``no-referrer`` browsers send
#: ``Origin: null`` with that POST (Fetch standard, "serializing a request origin"), and
#: Django's CSRF origin check rightly refuses it. Accepting ``null`` safely would need
#: ``Sec-Fetch-Site``, which older browsers (Safari before 16.4) do not send, locking those
#: clients out of their check-in. ``same-origin`` leaks nothing: the page's URL is ``/c/``
#: (the token is gone by then), and the only referrer sent goes to Bordin itself.
FORM_REFERRER_POLICY = "same-origin"

View = Callable[..., HttpResponse]


def client_page(view: View) -> View:
    """Decorate a client-facing view: never cached, no referrer unless the view chose one."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)
        response.headers.setdefault("Referrer-Policy", CLIENT_REFERRER_POLICY)
        return response

    return wrapped
