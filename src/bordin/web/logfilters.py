"""Keep check-in tokens (and other private-link tokens) out of the logs.

Django logs the path of every 4xx/5xx response ("Not Found: /c/<token>"), and the development
server logs every request line. A token in a log is a working credential for as long as the
link is open, so :class:`RedactTokens` rewrites each record before any handler sees it:

* ``/c/<anything>`` becomes ``/c/<token>`` (the check-in link), ``/j/<anything>`` likewise
  (the journey link);
* any other run of 32 or more URL-safe characters after ``/`` or ``=`` becomes ``<redacted>``
  (a private-link token in another path or a query string: every token is 43 of them).

>>> redact("Not Found: /c/abc.DEF-123_x?y=1")
'Not Found: /c/<token>?y=1'
>>> redact('"GET /c/ HTTP/1.1" 200')
'"GET /c/ HTTP/1.1" 200'
>>> redact("/i/" + "A" * 43)
'/i/<redacted>'
"""

from __future__ import annotations

import logging
import re

_CHECKIN_PATH = re.compile(r"(/[cj]/)(?!<token>)[^\s\"'?#]+")
_LONG_TOKEN = re.compile(r"(?<=[/=])[A-Za-z0-9_\-]{32,}")


def redact(text: str) -> str:
    """``text`` with check-in tokens and token-like strings replaced."""
    return _LONG_TOKEN.sub("<redacted>", _CHECKIN_PATH.sub(r"\1<token>", text))


class RedactTokens(logging.Filter):
    """A logging filter that redacts tokens in the message; it never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
