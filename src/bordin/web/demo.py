"""The demo clinic: staff, ~40 clients with realistic histories, and every kind of signal.

Histories come from :func:`bordin.measures.synth.synthesize` (alliance and symptom courses
with dips, repairs, sudden gains and deterioration), turned into item-level check-ins; a few
clients are then shaped by hand so that the demo always shows an open rupture, a repaired
rupture, an off-track client, a divergence, an overdue check-in and a risk alert. Alerts are
raised by the same rules as real check-ins (:mod:`bordin.web.alerts.rules`).

Everything is made up. Logins: ``demo-therapist``, ``demo-therapist-2``, ``demo-therapist-3``
and ``demo-admin`` (clinic admin), all with the password :data:`DEMO_PASSWORD`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from bordin.web.alerts import rules
from bordin.web.alerts.models import Alert
from bordin.web.checkins.models import CheckinLink, hash_token
from bordin.web.clinic import analysis
from bordin.web.clinic.models import (
    Client,
    Clinic,
    Episode,
    Goal,
    GoalRating,
    Instrument,
    Response,
    Session,
    StaffProfile,
)
from bordin.web.journey.demo import seed_journey

DEMO_PASSWORD = "bordin-demo-2026"  # noqa: S105 - published demo login, documented in README
DEMO_CLINIC = "Demo Clinic"
THERAPISTS = (
    ("demo-therapist", "Alex", "Morgan"),
    ("demo-therapist-2", "Sam", "Okafor"),
    ("demo-therapist-3", "Robin", "Lindqvist"),
)
ADMIN = ("demo-admin", "Kim", "Adeyemi")
N_CLIENTS = 40

NAMES = (
    "Amira K.", "Ben T.", "Carla M.", "Dev P.", "Elif S.", "Finn O.", "Grace W.", "Hugo L.",
    "Ines R.", "Jonas B.", "Kai N.", "Lena F.", "Malik H.", "Nora D.", "Omar Z.", "Priya V.",
    "Quinn A.", "Rosa G.", "Sami E.", "Tara J.", "Umar C.", "Vera I.", "Wen Y.", "Ximena Q.",
    "Yusuf U.", "Zoe X.", "Aaron P.", "Bea L.", "Cyrus M.", "Dana K.", "Emil S.", "Fatima R.",
    "Gabe N.", "Hana T.", "Ivo B.", "Jade O.", "Kofi D.", "Lucia E.", "Mateo F.", "Nadia G.",
)  # fmt: skip
GOAL_IDEAS = (
    "Feel less on edge at work",
    "Sleep through the night more often",
    "Get back to seeing friends",
    "Argue less with my partner",
    "Stop avoiding the supermarket",
    "Be kinder to myself when things go wrong",
    "Go back to running",
    "Talk to my family about how I feel",
    "Make decisions without asking everyone first",
    "Get through the day without panicking",
)

CRISIS_CONTACTS = (
    "Demo Clinic duty line (weekdays 9:00-17:00): 0100 000 000\n"
    "Out of hours: your local crisis line or emergency number\n"
    "In immediate danger: call your local emergency number"
)

#: Hand-shaped clients of demo-therapist (index -> scenario).
SCENARIOS = {
    0: "risk",
    1: "open_rupture",
    2: "repaired_rupture",
    3: "off_track",
    4: "divergence",
    5: "overdue",
}


@dataclass
class Course:
    alliance: list[float | None]
    wellbeing: list[float | None]
    weak_part: str


def _quarter(x: float) -> float:
    return float(np.clip(round(x * 4) / 4, 0, 10))


def _split(rng: np.random.Generator, mean: float, n: int, weak: int | None = None) -> list[int]:
    """``n`` integer answers (0-10) whose mean is ``mean`` rounded to 1/n."""
    target = round(mean * n)
    values = [target // n + (1 if k < target % n else 0) for k in range(n)]
    for _ in range(2):
        i, j = (int(v) for v in rng.choice(n, 2, replace=False))
        if values[i] < 10 and values[j] > 0:
            values[i] += 1
            values[j] -= 1
    if weak is not None:
        for k in range(n):
            if k != weak and values[weak] > 0 and values[k] < 10:
                values[weak] -= 1
                values[k] += 1
    return values


def _courses(seed: int) -> list[Course]:
    from bordin.measures.synth import synthesize

    frame = synthesize(N_CLIENTS, seed=seed, max_sessions=14, clients_per_therapist=14)
    rng = np.random.default_rng(seed)
    courses = []
    for cid in range(1, N_CLIENTS + 1):
        rows = frame.filter(frame["client_id"] == cid)
        n = int(rows.get_column("session").to_numpy().max())
        alliance: list[float | None] = [None] * n
        wellbeing: list[float | None] = [None] * n
        for session, measure, score in rows.select("session", "measure", "score").iter_rows():
            if measure == "alliance":
                alliance[session - 1] = _quarter(score)
            elif measure == "phq9":
                wellbeing[session - 1] = _quarter(9.5 - score / 3.0 + rng.normal(0, 0.4))
        weak = ("goals", "tasks", "bond")[int(rng.integers(0, 3))]
        courses.append(Course(alliance, wellbeing, weak))
    return courses


def _shape(course: Course, scenario: str) -> Course:
    if scenario == "open_rupture":
        a = [7.5, 7.75, 8.0, 8.0, 8.25, 8.0, 8.5, 8.25, 5.75]
        w = [3.5, 4.0, 4.5, 4.75, 5.0, 5.5, 5.5, 6.0, 5.75]
        return Course(list(a), list(w), "tasks")
    if scenario == "repaired_rupture":
        # back above the earlier level: a repair beyond regression to the mean (docs/measures.md)
        a = [7.0, 7.25, 7.5, 7.75, 5.5, 6.75, 8.75, 8.5, 8.5, 8.75]
        w = [3.0, 3.5, 4.25, 4.5, 4.0, 4.75, 5.5, 6.0, 6.5, 7.0]
        return Course(list(a), list(w), "bond")
    if scenario == "off_track":
        a = [7.0, 7.25, 7.0, 6.75, 7.0, 6.5, 6.75, 6.5]
        w = [5.5, 5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 1.75]
        return Course(list(a), list(w), "goals")
    if scenario == "divergence":
        a = [6.5, 6.25, 6.5, 6.0, 6.25, 6.0, 6.0]
        w = [4.0, 4.5, 4.75, 5.0, 5.5, 5.75, 6.0]
        return Course(list(a), list(w), "goals")
    return Course([v for v in course.alliance], [v for v in course.wellbeing], course.weak_part)


def seed_demo(seed: int = 2026) -> dict[str, Any]:
    """Create the demo clinic (once); returns a summary with the logins."""
    if Clinic.objects.filter(name=DEMO_CLINIC).exists():
        return {"created": False, "logins": _logins()}
    with transaction.atomic():
        _seed(seed)
        emailed = _contact_details()
    return {"created": True, "logins": _logins(), "clients": N_CLIENTS, "emailed": emailed}


#: The demo client who agreed to email: recording a session for them sends a real message
#: (to the demo's mail folder, never out).
DEMO_EMAIL = "alex.demo@example.org"


def _contact_details() -> str:
    client = Client.objects.filter(therapist__username=THERAPISTS[0][0], active=True).first()
    assert client is not None  # noqa: S101 - the seed just made them
    client.contact_email = DEMO_EMAIL
    client.consent_email = True
    client.consent_email_at = timezone.now()
    client.save(update_fields=["contact_email", "consent_email", "consent_email_at"])
    return client.display_name


def _logins() -> list[tuple[str, str, str]]:
    staff = [(u, "therapist", DEMO_PASSWORD) for u, _, _ in THERAPISTS]
    return [*staff, (ADMIN[0], "clinic admin", DEMO_PASSWORD)]


def _user(username: str, first: str, last: str, clinic: Clinic, role: str) -> Any:
    user_model = get_user_model()
    user = user_model.objects.create_user(
        username=username, password=DEMO_PASSWORD, first_name=first, last_name=last
    )
    StaffProfile.objects.create(user=user, clinic=clinic, role=role)
    return user


def _seed(seed: int) -> None:
    rng = np.random.default_rng(seed + 1)
    clinic = Clinic.objects.create(name=DEMO_CLINIC, crisis_contacts=CRISIS_CONTACTS)
    therapists = [_user(u, f, la, clinic, "therapist") for u, f, la in THERAPISTS]
    _user(*ADMIN, clinic=clinic, role="clinic_admin")
    from bordin.web.instruments.services import seed_demo_questionnaire

    seed_demo_questionnaire(clinic)  # PHQ-9's codes, placeholder wording (issue 11)

    reg = analysis.registry()
    alliance_def, wellbeing_def = reg[analysis.ALLIANCE], reg[analysis.WELLBEING]
    therapist_def = reg[analysis.THERAPIST_ALLIANCE]
    inst = {
        code: Instrument.snapshot(reg[code])
        for code in (analysis.ALLIANCE, analysis.WELLBEING, analysis.THERAPIST_ALLIANCE)
    }
    parts = [i.id for i in alliance_def.items if i.kind == "choice"]
    wb_items = [i.id for i in wellbeing_def.items if i.scored]
    today = timezone.localdate()
    now = timezone.now()
    courses = _courses(seed)
    comments = (
        "It felt a bit rushed at the end.",
        "I wasn't sure why we spent so long on the worksheet.",
        "I'd like more time to talk about work.",
        "Good session, nothing to change.",
    )
    last_sessions: list[tuple[Client, Session]] = []

    for k in range(N_CLIENTS):
        scenario = SCENARIOS.get(k, "")
        course = _shape(courses[k], scenario)
        therapist = therapists[0] if k < 14 else therapists[1 + (k % 2)]
        client = Client.objects.create(
            clinic=clinic, therapist=therapist, display_name=NAMES[k], active=k != 13
        )
        n = len(course.alliance)
        last_offset = 9 if scenario == "overdue" else int(rng.integers(1, 7))
        last_date = today - timedelta(days=last_offset)
        first_date = last_date - timedelta(days=7 * (n - 1))
        episode = Episode.objects.create(client=client, start=first_date)
        goals = [
            Goal.objects.create(
                episode=episode, text=GOAL_IDEAS[(k + j * 3) % len(GOAL_IDEAS)], position=j
            )
            for j in range(2 + k % 2)
        ]
        session = None
        for s in range(1, n + 1):
            a, w = course.alliance[s - 1], course.wellbeing[s - 1]
            attended = a is not None or w is not None
            session = Session.objects.create(
                episode=episode,
                number=s,
                date=first_date + timedelta(days=7 * (s - 1)),
                attendance=Session.Attendance.ATTENDED if attended else Session.Attendance.MISSED,
            )
            if not attended:
                continue
            awaiting = s == n and (scenario == "overdue" or (last_offset == 1 and not scenario))
            submitted = min(timezone.make_aware(datetime.combine(session.date, time(19, 30))), now)
            if awaiting:
                hours = 72
                created = timezone.make_aware(datetime.combine(session.date, time(17, 0)))
                CheckinLink.objects.create(
                    client=client,
                    episode=episode,
                    session=session,
                    token_hash=hash_token(f"demo-{k}-{s}-{rng.random()}"),
                    created_at=created,
                    expires_at=created + timedelta(hours=hours),
                )
                continue
            CheckinLink.objects.create(
                client=client,
                episode=episode,
                session=session,
                token_hash=hash_token(f"demo-{k}-{s}-{rng.random()}"),
                created_at=submitted - timedelta(hours=3),
                expires_at=submitted + timedelta(hours=69),
                used_at=submitted,
                used_key=f"demo-{k}-{s}",
            )
            alliance_resp = None
            if a is not None:
                weak = parts.index(course.weak_part) if _dipped(course.alliance, s) else None
                answers = dict(
                    zip(parts, (float(v) for v in _split(rng, a, len(parts), weak)), strict=True)
                )
                comment = ""
                dipped = _dipped(course.alliance, s)
                if dipped or rng.random() < 0.15:
                    pick = int(rng.integers(0, len(comments)))
                    # After a dip the client says what felt off, never "nothing to change".
                    comment = comments[min(pick, len(comments) - 2) if dipped else pick]
                alliance_resp = Response.objects.create(
                    session=session,
                    instrument=inst[analysis.ALLIANCE],
                    respondent="client",
                    answers=answers,
                    total=alliance_def.score(answers).total,
                    free_text=comment,
                    submitted_at=submitted,
                    idempotency_key=f"demo-{k}-{s}:alliance",
                )
            if w is not None:
                answers = dict(
                    zip(wb_items, (float(v) for v in _split(rng, w, len(wb_items))), strict=True)
                )
                if scenario == "risk" and s == n:
                    answers["safety"] = 1.0
                elif "safety" in {i.id for i in wellbeing_def.items}:
                    answers["safety"] = 0.0
                score = wellbeing_def.score(answers)
                Response.objects.create(
                    session=session,
                    instrument=inst[analysis.WELLBEING],
                    respondent="client",
                    answers=answers,
                    total=score.total,
                    risk_flagged=bool(score.risk_items),
                    submitted_at=submitted,
                    idempotency_key=f"demo-{k}-{s}:wellbeing",
                )
                GoalRating.objects.bulk_create(
                    GoalRating(
                        session=session,
                        response=alliance_resp,
                        goal=g,
                        rating=int(np.clip(round(w + rng.normal(0, 1)), 0, 10)),
                    )
                    for g in goals
                )
            if therapist == therapists[0] and a is not None and (s % 2 == 0 or s == n):
                mine = a + float(rng.choice([-0.5, 0.0, 0.5]))
                if scenario == "divergence" and s == n:
                    mine = 9.0
                t_answers = dict(
                    zip(
                        ["goals", "tasks", "bond"],
                        (float(v) for v in _split(rng, mine, 3)),
                        strict=True,
                    )
                )
                Response.objects.create(
                    session=session,
                    instrument=inst[analysis.THERAPIST_ALLIANCE],
                    respondent="therapist",
                    rated_by=therapist,
                    answers=t_answers,
                    total=therapist_def.score(t_answers).total,
                    submitted_at=submitted,
                    idempotency_key=f"demo-{k}-{s}:therapist",
                )
        if session is not None:
            last_sessions.append((client, session))
    _raise_alerts(clinic, last_sessions)
    seed_journey(clinic, therapists)  # clients at every stage of the journey


def _dipped(alliance: list[float | None], s: int) -> bool:
    prev = next((v for v in reversed(alliance[: s - 1]) if v is not None), None)
    now = alliance[s - 1]
    return prev is not None and now is not None and prev - now >= 1.5


def _raise_alerts(clinic: Clinic, last_sessions: list[tuple[Client, Session]]) -> None:
    """Alerts by the real rules; older ruptures get a history (repaired ones resolved)."""
    model = analysis.reference_model(clinic, analysis.WELLBEING)
    staff = {c.therapist_id: c.therapist for c, _ in last_sessions}
    for client, last in last_sessions:
        episode = last.episode
        data = analysis.episode_data(episode)
        sessions = {s.number: s for s in episode.sessions.all()}
        for r in analysis.ruptures(data.scores(analysis.ALLIANCE), clinic.pk):
            if r.session == last.number:
                rules.check_rupture(client, last, data)
                continue
            at = sessions[r.session]
            alert, _ = rules.raise_alert(
                client, Alert.Kind.RUPTURE, at, rules.rupture_detail(r, data)
            )
            when = timezone.make_aware(datetime.combine(at.date, time(9)))
            alert.status = Alert.Status.ACKNOWLEDGED
            alert.acknowledged_at, alert.acknowledged_by = when, staff[client.therapist_id]
            if r.status == "repaired":
                alert.status = Alert.Status.RESOLVED
                alert.resolved_at, alert.resolved_by = when, staff[client.therapist_id]
                alert.note = (
                    f"Talked it through at session {r.session + 1} and adjusted the plan "
                    f"together; alliance back up by session {r.repair_session}."
                )
            alert.save()
        wellbeing = Response.objects.filter(
            session=last, respondent="client", instrument__code=analysis.WELLBEING
        ).first()
        rules.check_risk(client, last, wellbeing)
        rules.check_divergence(client, last)
        rules.check_not_on_track(client, last, data, model)
