"""A client check-in's three requests run a fixed number of SQL statements (issue 10).

Each statement costs the server about a millisecond of CPU through the ORM, most of a
check-in's cost (``bench/bench_checkin_cpu.py``), so the counts are pinned here: a change that
adds a query to the hot path has to change this file too, and say why. Speed itself is not
asserted (benchmarks live in ``bench/``).
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Response
from tests.web.helpers import checkin_post

pytestmark = pytest.mark.django_db

PG = connection.vendor == "postgresql"
#: SAVEPOINT and RELEASE around a transaction inside a test's (BEGIN and COMMIT in production).
SAVEPOINT = 2
#: An audit row (bordin.web.audit.models): the newest chain hash, then the insert; PostgreSQL
#: first takes the chain's advisory lock (in the request's transaction, or one of its own).
AUDIT = 2 + (1 if PG else 0)

# The link with its client, clinic, episode and session; the new session: its key checked,
# then inserted.
FOLLOW_LINK = 3 + SAVEPOINT
# The session; the link with its client, clinic, episode, session and whether the session
# is a follow-up; the audit row (the form shows the client's goals); the active goals; the
# measure plan (episode override or clinic plan, one query); the clinic's usable imported
# instruments.
OPEN_FORM = 5 + AUDIT
# The session, the link (with its clinic's journey settings, for the thank-you page), the
# goals (all of them, with their revisions: the thank-you page shows them too); the plan, the
# imported instruments and whether the session is a follow-up are not read again (the form's
# signed note of what it showed, services.shown_instruments). In one transaction: the link
# used up (one conditional update that also locks it), the instrument rows, the responses
# (one insert), the goal ratings (one insert), the audit row, other open links revoked, the
# worker's task for the alert rules other than risk (alerts.tasks: they read the whole
# episode). The thank-you page: the goals' ratings. The session is not written.
SUBMIT = 3 + (6 + AUDIT + SAVEPOINT) + 1


def check_in(client: Any, token: str, goals: list[Any], queries: Any) -> Any:
    with queries(FOLLOW_LINK):
        assert client.get(f"/c/{token}").status_code == 302
    with queries(OPEN_FORM):
        page = client.get("/c/")
    assert page.status_code == 200
    html = page.content.decode()
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    shown = re.search(r'name="shown" value="([^"]+)"', html)
    assert key is not None and shown is not None
    with queries(SUBMIT):  # as a browser posts it: the hidden fields too
        return client.post("/c/", checkin_post(goals, key=key.group(1), shown=shown.group(1)))


def test_each_request_of_a_check_in_runs_a_fixed_number_of_queries(
    client: Any, add_session: Any, owner: Any, goals: list[Any], django_assert_num_queries: Any
) -> None:
    # The first check-in stores the instruments' rows and fits the clinic's trajectory model
    # (cached): what every later check-in finds done.
    _, token = CheckinLink.issue(add_session(days_ago=1), created_by=owner)
    check_in(client, token, goals, lambda n: nullcontext())
    _, token = CheckinLink.issue(add_session(days_ago=0), created_by=owner)
    thanks = check_in(Client(), token, goals, django_assert_num_queries)  # a new browser
    assert thanks.status_code == 200
    assert b"data-client-goals" in thanks.content  # the goals are shown (clinic default)
    assert Response.objects.count() == 4
