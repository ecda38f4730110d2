"""The caseload: badges, urgency order, trends and a fixed number of queries."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink
from bordin.web.clinic.models import Client, Episode, Session
from tests.web.helpers import record_checkin

pytestmark = pytest.mark.django_db


def make_client(owner: Any, name: str, *, checkin_days_ago: int | None = 2, **kw: Any) -> Client:
    """A client with one attended session; checked in ``checkin_days_ago`` days ago."""
    c = Client.objects.create(clinic=owner.staff.clinic, therapist=owner, display_name=name, **kw)
    ep = Episode.objects.create(client=c, start=date.today() - timedelta(days=30))
    if checkin_days_ago is not None:
        s = Session.objects.create(
            episode=ep, number=1, date=date.today() - timedelta(days=checkin_days_ago)
        )
        record_checkin(
            s,
            {"goals": 7, "tasks": 7, "bond": 7, "overall": 7},
            {"mood": 5, "daily": 5, "connection": 5, "coping": 5},
            submitted_at=timezone.now() - timedelta(days=checkin_days_ago),
        )
    return c


def alert(c: Client, kind: str, status: str = "new") -> Alert:
    return Alert.objects.create(
        clinic=c.clinic, client=c, kind=kind, status=status, dedupe_key=f"{kind}:{c.pk}"
    )


def rows(html: str) -> list[tuple[str, list[str]]]:
    """(client id, badge kinds) per caseload row, in page order."""
    out = []
    for match in re.finditer(r'<tr data-client-id="(\d+)">(.*?)</tr>', html, re.S):
        out.append((match.group(1), re.findall(r'data-alert-kind="([a-z-]+)"', match.group(2))))
    return out


@pytest.fixture
def caseload(owner: Any) -> dict[str, Client]:
    c = {
        "calm": make_client(owner, "Calm"),
        "risky": make_client(owner, "Risky"),
        "ruptured": make_client(owner, "Ruptured"),
        "off": make_client(owner, "Off track"),
        "diverge": make_client(owner, "Diverge"),
        "both": make_client(owner, "Both"),
        "quiet": make_client(owner, "Quiet", checkin_days_ago=20),
        "late": make_client(owner, "Late"),
        "gone": make_client(owner, "Gone", active=False),
        "settled": make_client(owner, "Settled"),
    }
    alert(c["risky"], "risk")
    alert(c["ruptured"], "rupture", "acknowledged")
    alert(c["off"], "not_on_track")
    alert(c["diverge"], "divergence")
    alert(c["both"], "rupture")
    Alert.objects.create(
        clinic=c["both"].clinic, client=c["both"], kind="divergence", dedupe_key="d2"
    )
    alert(c["settled"], "rupture", "resolved")
    alert(c["gone"], "risk")
    # Late: the last attended session's link expired without a check-in.
    ep = c["late"].episodes.get()
    s2 = Session.objects.create(episode=ep, number=2, date=date.today() - timedelta(days=1))
    link, _ = CheckinLink.issue(s2)
    CheckinLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    return c


def test_badges_and_urgency_order(client: Any, owner: Any, caseload: dict[str, Client]) -> None:
    client.force_login(owner)
    html = client.get("/").content.decode()
    c = caseload
    expected = [
        (c["risky"], ["risk"]),
        (c["both"], ["rupture", "divergence"]),
        (c["ruptured"], ["rupture"]),
        (c["off"], ["not-on-track"]),
        (c["diverge"], ["divergence"]),
        (c["late"], ["overdue"]),
        (c["quiet"], ["overdue"]),
        (c["calm"], []),
        (c["settled"], []),
    ]
    assert rows(html) == [(str(k.pk), kinds) for k, kinds in expected]
    assert f'data-client-id="{c["gone"].pk}"' not in html


def test_open_link_is_not_overdue_yet(client: Any, owner: Any) -> None:
    c = make_client(owner, "Waiting")
    ep = c.episodes.get()
    s2 = Session.objects.create(episode=ep, number=2, date=date.today())
    CheckinLink.issue(s2)
    client.force_login(owner)
    assert rows(client.get("/").content.decode()) == [(str(c.pk), [])]


def test_never_checked_in_for_long_is_overdue(client: Any, owner: Any) -> None:
    c = make_client(owner, "New", checkin_days_ago=None)
    ep = c.episodes.get()
    Session.objects.create(
        episode=ep, number=1, date=date.today() - timedelta(days=20), attendance="missed"
    )
    fresh = make_client(owner, "Fresh", checkin_days_ago=None)
    client.force_login(owner)
    assert rows(client.get("/").content.decode()) == [(str(c.pk), ["overdue"]), (str(fresh.pk), [])]


def test_trends(client: Any, owner: Any) -> None:
    c = make_client(owner, "Trend", checkin_days_ago=9)
    ep = c.episodes.get()
    s2 = Session.objects.create(episode=ep, number=2, date=date.today() - timedelta(days=2))
    record_checkin(
        s2,
        {"goals": 9, "tasks": 9, "bond": 9, "overall": 9},
        {"mood": 3, "daily": 3, "connection": 3, "coping": 3},
    )
    client.force_login(owner)
    html = client.get("/").content.decode()
    assert "up from 7 (better)" in html
    assert "down from 5 (worse)" in html
    assert '<span class="score">9</span>' in html


def test_admin_sees_whole_clinic_with_therapist_column(
    client: Any, owner: Any, colleague: Any, admin: Any
) -> None:
    mine = make_client(owner, "Mine")
    theirs = make_client(colleague, "Theirs")
    client.force_login(admin)
    html = client.get("/").content.decode()
    ids = [r[0] for r in rows(html)]
    assert ids == [str(mine.pk), str(theirs.pk)]
    assert "Therapist</th>" in html
    client.force_login(colleague)
    assert [r[0] for r in rows(client.get("/").content.decode())] == [str(theirs.pk)]


# session, user, second-factor device, session epoch, staff profile, clients (with
# subqueries), scores, open alerts, one bulk insert of the audit events (one per client
# listed), and the session saved again (the first request after log-in renews it for the idle
# timeout, see web.session_renewal; an UPDATE in a savepoint: 3 queries), the completion rate
# and the flagged contacts (delivery panel: 2 queries).
# The list's audit events read the newest chain hash first (PostgreSQL: and take the chain's
# lock), see bordin.web.audit.models.
CASELOAD_QUERIES = 14 + (2 if connection.vendor == "postgresql" else 1)


@pytest.mark.parametrize("n_clients", [1, 12])
def test_caseload_query_count_is_constant(
    client: Any, owner: Any, django_assert_num_queries: Any, n_clients: int
) -> None:
    for k in range(n_clients):
        c = make_client(owner, f"Client {k:02d}")
        alert(c, "rupture")
        ep = c.episodes.get()
        s2 = Session.objects.create(episode=ep, number=2, date=date.today())
        CheckinLink.issue(s2)
    client.force_login(owner)
    with django_assert_num_queries(CASELOAD_QUERIES):
        response = client.get("/")
    assert response.status_code == 200
    assert len(rows(response.content.decode())) == n_clients
    from bordin.web.audit.models import AuditEvent

    reads = AuditEvent.objects.filter(action="read", object_type="client", detail="caseload")
    assert reads.count() == n_clients


def test_names_are_escaped(client: Any, owner: Any, admin: Any) -> None:
    """Rows are built in Python (caseload.Row.html): names must still be escaped."""
    owner.first_name, owner.last_name = "<i>Sam", '"Lee"'
    owner.save()
    c = make_client(owner, "<script>alert(1)</script> & Co")
    client.force_login(admin)
    html = client.get("/").content.decode()
    row = html.split(f'<tr data-client-id="{c.pk}">')[1].split("</tr>")[0]
    assert "<script>" not in row and "<i>" not in row
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in row
    assert "<td>&lt;i&gt;Sam &quot;Lee&quot;</td>" in row
    assert '<span class="muted">None</span>' in row  # no badges
    assert re.search(r'<time datetime="[^"]+">2\xa0days ago</time>', row)
