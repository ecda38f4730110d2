"""Benchmark the web app: the caseload page and check-in submissions under concurrency.

Usage (from the repository root)::

    .venv/bin/python bench/bench_web.py                  # full run, SQLite and PostgreSQL
    .venv/bin/python bench/bench_web.py --quick          # smoke run (< 30 s)
    .venv/bin/python bench/bench_web.py --think-ms 2000  # paced clients in a hurry (1-3 s)
    .venv/bin/python bench/bench_web.py --db sqlite      # one database only
    .venv/bin/python bench/bench_web.py --pg-url postgres://postgres@127.0.0.1:5432/bordin_bench

PostgreSQL: the database named in ``--pg-url`` (default ``bordin_bench``) is dropped and
created afresh through the server's ``test`` database, and dropped again at the end. SQLite: a
file database in a temporary directory, in WAL mode as the app configures it.

What it measures, per database, all in one run on this machine:

1. **Caseload.** One therapist with 150 active clients (plus 10 discharged) and 20 weekly
   sessions each: client alliance and wellbeing check-ins, goal ratings, therapist ratings on
   every other session, used check-in links, a few pending or expired links and open alerts.
   The caseload page is requested ``--caseload-requests`` times in-process with Django's test
   client (the whole middleware stack, sequential), each inside ``CaptureQueriesContext``:
   p50/p95/max latency and the SQL query count per request. Target: p95 < 150 ms with a
   bounded query count.
2. **Check-ins under concurrency.** ``bordin serve`` (gunicorn, 2 workers × 4 threads, as the
   app ships it; ``--workers``/``--threads`` to vary) runs in a subprocess on 127.0.0.1
   against the same database. Links are issued (each for a new session), then
   ``--concurrency`` client threads (stdlib ``http.client``) each take links from a queue and
   do what a browser does: GET ``/c/<token>`` (302 + session cookie), GET ``/c/`` (the form,
   CSRF token, idempotency key), POST the answers. The POST latency is timed. Every 10th
   client also sends its POST a second time on another connection at the same moment (a
   double-click), which must not store anything twice. Afterwards the stored rows are
   counted: each successful check-in must have exactly one alliance and one wellbeing
   response. Two load models, one after the other:

   * **paced** (``--paced`` check-ins; the target, POST p95 < 100 ms): 50 clients at once,
     each spending 0.5-1.5 × ``--think-ms`` (default 10 s, so 5-15 s) on the form between
     loading and sending it. People take longer: the form has about a dozen questions and
     says it takes about two minutes, so this is a heavy clinic load (over 4 check-ins a
     second, some 15,000 an hour) rather than a typical one.
   * **back to back** (``--checkins``): the same 50 clients without any pause, each sending
     its next check-in as soon as the last one is answered. Nobody uses a clinic like this;
     it measures capacity (check-ins per second) and is reported without a target. With 50
     requests always in flight, latency is about 50 / throughput whatever the code does.
3. **Baseline, same run.** ``/bench/ok``, a bare view returning "ok" (bench-only URLconf in
   ``bench/bench_web_urls.py``, same settings and middleware), in-process and sequential like
   the caseload, and over HTTP with the same flow shape (GET, GET, timed POST on a new
   connection per client), the same concurrency and pacing as the check-ins. Ratios: caseload p95 /
   bare in-process p95, check-in POST p95 / bare HTTP POST p95.

Each database runs in its own child process (Django binds its database at start-up); every
loop has a fixed count and a deadline, and the server subprocess is always stopped. Nothing is
asserted: speed is reported, not tested.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SETTINGS = "bench.bench_web_settings"
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/bordin_bench"
HOST = "127.0.0.1"
CASELOAD_TARGET_MS = 150.0
CHECKIN_TARGET_MS = 100.0
DUPLICATE_EVERY = 10  # every n-th check-in client double-submits

# ------------------------------------------------------------------------------ statistics


def summary(samples_ms: list[float]) -> dict[str, float]:
    if not samples_ms:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "max": float("nan")}
    ordered = sorted(samples_ms)
    p95 = statistics.quantiles(ordered, n=100, method="inclusive")[94] if len(ordered) > 1 else 0
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p95": float(p95 or ordered[-1]),
        "max": ordered[-1],
    }


# ---------------------------------------------------------------------------- HTTP client


class Browser:
    """One visitor: a keep-alive connection to the server and a cookie jar."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        self.cookies: dict[str, str] = {}

    def close(self) -> None:
        self.conn.close()

    def reconnect(self) -> None:
        """A fresh connection with the same cookies, as a browser opens after an idle pause
        (the server closes idle keep-alive connections after a couple of seconds)."""
        self.conn.close()
        self.conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Host": f"{HOST}:{self.port}", "User-Agent": "bordin-bench"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers.update(extra or {})
        return headers

    def _keep_cookies(self, response: http.client.HTTPResponse) -> None:
        for raw in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = raw.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]

    def send(self, method: str, path: str, body: bytes | None = None) -> None:
        extra = {}
        if body is not None:
            extra = {
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": f"http://{HOST}:{self.port}",
            }
        self.conn.request(method, path, body=body, headers=self._headers(extra))

    def receive(self) -> tuple[int, dict[str, str], str]:
        response = self.conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        self._keep_cookies(response)
        return response.status, dict(response.getheaders()), body

    def request(
        self, method: str, path: str, body: bytes | None = None
    ) -> tuple[int, dict[str, str], str]:
        self.send(method, path, body)
        return self.receive()


def _input_value(html: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*>', html)
    value = re.search(r'value="([^"]*)"', tag.group(0)) if tag else None
    return value.group(1) if value else ""


def checkin_form_data(html: str) -> tuple[dict[str, str], str]:
    """A valid submission for the rendered form (as the web tests build one) and its key."""
    from tests.web.helpers import checkin_post

    goal_ids = sorted({int(g) for g in re.findall(r'name="goal-(\d+)"', html)})
    key = _input_value(html, "idempotency_key")
    data = checkin_post([SimpleNamespace(pk=g) for g in goal_ids], key=key)
    data["csrfmiddlewaretoken"] = _input_value(html, "csrfmiddlewaretoken")
    data["shown"] = _input_value(html, "shown")  # hidden, as a browser posts it
    return {k: str(v) for k, v in data.items()}, key


@dataclass
class FlowResult:
    ok: bool
    post_ms: float | None = None
    key: str = ""
    duplicate_status: int | None = None
    error: str = ""


def think(browser: Browser, think_ms: int) -> None:
    """A person filling in the form: wait 0.5 to 1.5 times ``think_ms`` (0: no wait)."""
    if think_ms > 0:
        time.sleep(random.uniform(0.5, 1.5) * think_ms / 1000)
        browser.reconnect()


def checkin_flow(
    port: int, token: str, timeout: float, duplicate: bool, think_ms: int = 0
) -> FlowResult:
    """GET /c/<token>, GET /c/ (the form), timed POST; optionally a simultaneous double POST."""
    browser = Browser(port, timeout)
    twin: Browser | None = None
    try:
        status, headers, _ = browser.request("GET", f"/c/{token}")
        if status != 302 or headers.get("Location") != "/c/":
            return FlowResult(False, error=f"start {status}")
        status, _, html = browser.request("GET", "/c/")
        if status != 200:
            return FlowResult(False, error=f"form {status}")
        data, key = checkin_form_data(html)
        body = urlencode(data).encode()
        think(browser, think_ms)
        if duplicate:
            twin = Browser(port, timeout)
            twin.cookies = dict(browser.cookies)
        started = time.perf_counter()
        browser.send("POST", "/c/", body)
        if twin is not None:
            twin.send("POST", "/c/", body)
        status, _, page = browser.receive()
        post_ms = (time.perf_counter() - started) * 1000
        dup_status = twin.receive()[0] if twin is not None else None
        ok = status == 200 and "<h1>Thank you</h1>" in page
        return FlowResult(ok, post_ms, key, dup_status, "" if ok else f"post {status}")
    except (OSError, http.client.HTTPException) as exc:
        return FlowResult(False, error=type(exc).__name__)
    finally:
        browser.close()
        if twin is not None:
            twin.close()


def bare_flow(port: int, timeout: float, think_ms: int = 0) -> FlowResult:
    """The same shape on the bare view: new connection, GET, GET, timed POST."""
    browser = Browser(port, timeout)
    try:
        for _ in range(2):
            status, _, _ = browser.request("GET", "/bench/ok")
            if status != 200:
                return FlowResult(False, error=f"get {status}")
        think(browser, think_ms)
        started = time.perf_counter()
        status, _, page = browser.request("POST", "/bench/ok", b"x=1")
        post_ms = (time.perf_counter() - started) * 1000
        ok = status == 200 and page == "ok"
        return FlowResult(ok, post_ms, error="" if ok else f"post {status}")
    except (OSError, http.client.HTTPException) as exc:
        return FlowResult(False, error=type(exc).__name__)
    finally:
        browser.close()


def run_concurrent(
    jobs: list[Callable[[], FlowResult]], concurrency: int, deadline_s: float
) -> tuple[list[FlowResult], float]:
    """Run the jobs on ``concurrency`` threads; returns the results and the wall seconds."""
    todo: queue.Queue[Callable[[], FlowResult]] = queue.Queue()
    for job in jobs:
        todo.put(job)
    results: list[FlowResult] = []
    lock = threading.Lock()
    start_line = threading.Barrier(concurrency + 1, timeout=30)
    stop_at = time.monotonic() + deadline_s

    def worker() -> None:
        start_line.wait()
        while time.monotonic() < stop_at:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            result = job()
            with lock:
                results.append(result)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    start_line.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(timeout=max(0.0, stop_at - time.monotonic()) + 5)
    return list(results), time.perf_counter() - started


# ---------------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def start_server(
    env: dict[str, str], log: Path, timeout: float, *, workers: int = 2, threads: int = 4
) -> tuple[subprocess.Popen[bytes], int]:
    """``bordin serve`` (threaded runserver) with the bench settings; waits until it answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "bordin.cli", "serve", "--host", HOST, "--port", str(port)]
    cmd += ["--workers", str(workers), "--threads", str(threads)]
    with log.open("wb") as out:
        # Fixed argv (this interpreter, our module, a port we chose): no shell, no user input.
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=out)  # noqa: S603
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/bench/ok", headers={"Host": f"{HOST}:{port}"})
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port
            conn.close()
        except OSError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"server did not answer within {timeout:.0f} s; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# ---------------------------------------------------------------------------------- seeding


def seed_caseload(n_clients: int, n_sessions: int, seed: int = 2026) -> Any:
    """One therapist's caseload at realistic volume, with bulk inserts; returns the user."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

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

    rng = np.random.default_rng(seed)
    reg = analysis.registry()
    defs = {c: reg[c] for c in (analysis.ALLIANCE, analysis.WELLBEING, analysis.THERAPIST_ALLIANCE)}
    today = timezone.localdate()
    now = timezone.now()

    with transaction.atomic():
        inst = {code: Instrument.snapshot(d) for code, d in defs.items()}
        clinic = Clinic.objects.create(
            name="Bench Clinic", crisis_contacts="Duty line: 0100 000 000\nOut of hours: 999"
        )
        user = get_user_model().objects.create_user(
            username="bench-therapist", first_name="Bench", last_name="Therapist"
        )
        StaffProfile.objects.create(user=user, clinic=clinic, role="therapist")
        n_inactive = 10
        clients = Client.objects.bulk_create(
            Client(
                clinic=clinic,
                therapist=user,
                display_name=f"Client {k:03d} {chr(65 + k % 26)}.",
                active=k < n_clients,
            )
            for k in range(n_clients + n_inactive)
        )
        last_offsets = [int(rng.integers(1, 11)) for _ in clients]
        episodes = Episode.objects.bulk_create(
            Episode(client=c, start=today - timedelta(days=off + 7 * (n_sessions - 1)))
            for c, off in zip(clients, last_offsets, strict=True)
        )
        goals = Goal.objects.bulk_create(
            Goal(episode=e, text=f"Goal {j + 1} in my own words", position=j)
            for k, e in enumerate(episodes)
            for j in range(2 + k % 2)
        )
        goals_of: dict[int, list[Any]] = {}
        for g in goals:
            goals_of.setdefault(g.episode_id, []).append(g)

        sessions = Session.objects.bulk_create(
            Session(
                episode=e,
                number=s,
                date=e.start + timedelta(days=7 * (s - 1)),
                attendance="missed" if s < n_sessions and rng.random() < 0.05 else "attended",
            )
            for e in episodes
            for s in range(1, n_sessions + 1)
        )

        def answers(level: float, ids: list[str]) -> dict[str, float]:
            return {i: float(np.clip(round(level + rng.normal(0, 0.7)), 0, 10)) for i in ids}

        a_ids = ["goals", "tasks", "bond", "overall"]
        w_ids = ["mood", "daily", "connection", "coping"]
        pending = {k for k in range(len(clients)) if k % 9 == 0}  # last link not (yet) used
        risky = {k for k in range(len(clients)) if k % 37 == 5}
        links: list[Any] = []
        client_resp: list[Any] = []
        therapist_resp: list[Any] = []
        alliance_of: dict[int, int] = {}  # index in client_resp of each session's alliance
        for k, (c, e) in enumerate(zip(clients, episodes, strict=True)):
            alliance = float(rng.uniform(5.5, 8.5))
            wellbeing = float(rng.uniform(2.5, 5.0))
            mine = sessions[k * n_sessions : (k + 1) * n_sessions]
            for s in mine:
                if s.attendance != "attended":
                    continue
                alliance = float(np.clip(alliance + rng.normal(0.05, 0.5), 1, 10))
                if rng.random() < 0.03:
                    alliance -= 2.0  # a rupture
                wellbeing = float(np.clip(wellbeing + rng.normal(0.12, 0.5), 0, 10))
                submitted = min(timezone.make_aware(datetime.combine(s.date, dtime(19, 30))), now)
                is_last = s.number == n_sessions
                if is_last and k in pending:
                    created = timezone.make_aware(datetime.combine(s.date, dtime(17, 0)))
                    links.append(
                        CheckinLink(
                            client=c,
                            episode=e,
                            session=s,
                            token_hash=hash_token(secrets.token_urlsafe(32)),
                            created_at=created,
                            expires_at=created + timedelta(hours=72),
                        )
                    )
                    continue
                links.append(
                    CheckinLink(
                        client=c,
                        episode=e,
                        session=s,
                        token_hash=hash_token(secrets.token_urlsafe(32)),
                        created_at=submitted - timedelta(hours=3),
                        expires_at=submitted + timedelta(hours=69),
                        used_at=submitted,
                        used_key=f"seed-{s.pk}",
                    )
                )
                a = answers(alliance, a_ids)
                w = answers(wellbeing, w_ids)
                w["safety"] = 1.0 if is_last and k in risky else 0.0
                alliance_of[s.pk] = len(client_resp)
                comment = "It felt a bit rushed at the end." if rng.random() < 0.1 else ""
                for code, ans, text in (
                    (analysis.ALLIANCE, a, comment),
                    (analysis.WELLBEING, w, ""),
                ):
                    score = defs[code].score(ans)
                    client_resp.append(
                        Response(
                            session=s,
                            instrument=inst[code],
                            respondent="client",
                            answers=ans,
                            total=score.total,
                            free_text=text,
                            risk_flagged=bool(score.risk_items),
                            submitted_at=submitted,
                            idempotency_key=f"seed-{s.pk}:{code}",
                        )
                    )
                if s.number % 2 == 0 or is_last:
                    t = answers(alliance + 0.3, ["goals", "tasks", "bond"])
                    therapist_resp.append(
                        Response(
                            session=s,
                            instrument=inst[analysis.THERAPIST_ALLIANCE],
                            respondent="therapist",
                            rated_by=user,
                            answers=t,
                            total=defs[analysis.THERAPIST_ALLIANCE].score(t).total,
                            submitted_at=submitted,
                            idempotency_key=f"seed-{s.pk}:therapist",
                        )
                    )
        CheckinLink.objects.bulk_create(links, batch_size=2000)
        client_resp = Response.objects.bulk_create(client_resp, batch_size=2000)
        Response.objects.bulk_create(therapist_resp, batch_size=2000)
        session_by_pk = {s.pk: s for s in sessions}
        GoalRating.objects.bulk_create(
            (
                GoalRating(
                    session=session_by_pk[s_pk],
                    response=client_resp[i],
                    goal=g,
                    rating=int(rng.integers(2, 9)),
                )
                for s_pk, i in alliance_of.items()
                for g in goals_of[session_by_pk[s_pk].episode_id]
            ),
            batch_size=2000,
        )
        kinds = ["risk", "rupture", "not_on_track", "divergence", "rupture", "not_on_track"]
        alerts = []
        for k, c in enumerate(clients):
            if k % 7 != 3 and k not in risky:
                continue
            kind = "risk" if k in risky else kinds[k % len(kinds)]
            status = ("new", "acknowledged", "resolved")[k % 3]
            last = sessions[(k + 1) * n_sessions - 1]
            alerts.append(
                Alert(
                    clinic=clinic,
                    client=c,
                    session=last,
                    kind=kind,
                    status=status,
                    detail="Seeded by the benchmark.",
                    dedupe_key=f"{kind}:c{c.pk}:s{last.pk}",
                )
            )
        Alert.objects.bulk_create(alerts)
    return user


def issue_links(user: Any, n: int) -> tuple[list[str], list[int]]:
    """``n`` fresh check-in links, each for a new attended session today (round robin)."""
    from django.db import transaction
    from django.db.models import Max
    from django.utils import timezone

    from bordin.web.checkins.models import CheckinLink
    from bordin.web.clinic.models import Episode, Session

    episodes = list(
        Episode.objects.filter(client__therapist=user, client__active=True)
        .annotate(last=Max("sessions__number"))
        .select_related("client")
        .order_by("pk")
    )
    next_number = {e.pk: (e.last or 0) + 1 for e in episodes}
    tokens, session_ids = [], []
    with transaction.atomic():
        for k in range(n):
            e = episodes[k % len(episodes)]
            session = Session.objects.create(
                episode=e, number=next_number[e.pk], date=timezone.localdate()
            )
            next_number[e.pk] += 1
            tokens.append(CheckinLink.issue(session, created_by=user)[1])
            session_ids.append(session.pk)
    return tokens, session_ids


def count_rows(
    ok_keys: list[str], failed_keys: list[str], session_ids: list[int]
) -> dict[str, int]:
    """Stored check-ins per link session, for the successful and the failed POSTs.

    A successful check-in must have used its link and stored exactly one alliance and one
    wellbeing response on that session (``exactly_one``); a failed POST must have stored
    either a whole check-in or nothing (``partial`` counts anything else, on any session).
    """
    from django.db.models import Count

    from bordin.web.checkins.models import CheckinLink
    from bordin.web.clinic.models import Response

    per_session: dict[int, int] = dict.fromkeys(session_ids, 0)
    for start in range(0, len(session_ids), 500):
        chunk = session_ids[start : start + 500]
        for sid, n in (
            Response.objects.filter(session_id__in=chunk, respondent="client")
            .order_by()
            .values_list("session_id")
            .annotate(n=Count("pk"))
        ):
            per_session[sid] = n
    used = dict(
        CheckinLink.objects.filter(session_id__in=session_ids, used_at__isnull=False)
        .order_by()
        .values_list("used_key", "session_id")
    )
    exactly_one = sum(1 for k in ok_keys if k in used and per_session[used[k]] == 2)
    failed_stored = sum(1 for k in failed_keys if k in used and per_session[used[k]] == 2)
    return {
        "exactly_one": exactly_one,
        "rows": sum(per_session.values()),
        "links_used": len(used),
        "failed_but_stored": failed_stored,
        "partial": sum(1 for n in per_session.values() if n not in (0, 2)),
    }


# -------------------------------------------------------------------------------- one db


@dataclass
class Plan:
    caseload_clients: int
    sessions: int
    caseload_requests: int
    checkins: int
    concurrency: int
    timeout: float
    warmup: int = 5
    think_ms: int = 10_000
    paced: int = 250
    workers: int = 2
    threads: int = 4
    keep: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_database(db: str, pg_url: str, workdir: Path) -> str:
    """The DATABASE_URL for this run; a fresh PostgreSQL database or a fresh SQLite file."""
    if db == "sqlite":
        return f"sqlite:///{(workdir / 'bench.sqlite3').resolve()}"
    recreate_pg(pg_url, drop_only=False)
    return pg_url


def recreate_pg(pg_url: str, *, drop_only: bool) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(pg_url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/test"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if not drop_only:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def timed_get(client: Any, path: str, n: int) -> tuple[list[float], list[int], list[Any]]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    latencies, queries, responses = [], [], []
    for _ in range(n):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            response = client.get(path)
            latencies.append((time.perf_counter() - started) * 1000)
        queries.append(len(ctx))
        responses.append(response)
    return latencies, queries, responses


def run_one_db(db: str, plan: Plan, pg_url: str) -> dict[str, Any]:
    """Seed, measure in-process, serve, measure over HTTP, count rows. Runs in a child."""
    workdir = Path(tempfile.mkdtemp(prefix=f"bordin-bench-{db}-"))
    database_url = prepare_database(db, pg_url, workdir)
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": database_url,
            "BORDIN_SECRET_KEY": env.get("BORDIN_SECRET_KEY") or secrets.token_urlsafe(50),
            # Free text encrypted at rest, as `bordin serve` requires with DEBUG off.
            "BORDIN_FIELD_KEYS": env.get("BORDIN_FIELD_KEYS") or Fernet.generate_key().decode(),
            "BORDIN_DATA_DIR": str(workdir),
            "BORDIN_STATIC_ROOT": str(workdir / "static"),
            "BORDIN_LOG_LEVEL": "WARNING",
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(":"),
        }
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    result: dict[str, Any] = {"db": db, "vendor": connection.vendor}
    t0 = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    user = seed_caseload(plan.caseload_clients, plan.sessions)
    if connection.vendor == "postgresql":
        # A live database has planner statistics (autovacuum); a freshly bulk-loaded one not.
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
    result["seed_s"] = time.perf_counter() - t0
    from bordin.web.checkins.models import CheckinLink
    from bordin.web.clinic.models import GoalRating, Response, Session

    result["volume"] = {
        "clients": plan.caseload_clients,
        "sessions": Session.objects.count(),
        "responses": Response.objects.count(),
        "goal_ratings": GoalRating.objects.count(),
        "links": CheckinLink.objects.count(),
    }
    if connection.vendor == "sqlite":
        with connection.cursor() as cur:
            cur.execute("PRAGMA journal_mode")
            result["journal_mode"] = cur.fetchone()[0]

    # 1. Caseload, in-process, sequential; the bare view the same way.
    from tests.web.helpers import login_verified  # a session that passed the second factor

    browser = login_verified(Client(HTTP_HOST=HOST), user)
    timed_get(browser, "/", plan.warmup)
    timed_get(browser, "/bench/ok", plan.warmup)
    lat, queries, responses = timed_get(browser, "/", plan.caseload_requests)
    rows = responses[-1].content.decode().count("<tr data-client-id=")
    result["caseload"] = {
        **summary(lat),
        "queries_min": min(queries),
        "queries_max": max(queries),
        "status": sorted({r.status_code for r in responses}),
        "rows": rows,
    }
    lat, queries, responses = timed_get(browser, "/bench/ok", plan.caseload_requests)
    result["bare_inproc"] = {**summary(lat), "queries_max": max(queries)}

    # 2. + 3. Over HTTP: the bare view, then the check-ins, same flow shape and concurrency.
    tokens, session_ids = issue_links(user, plan.warmup + plan.paced + plan.checkins)
    connection.close()
    proc, port = start_server(
        env, workdir / "server.log", timeout=60, workers=plan.workers, threads=plan.threads
    )
    try:
        for _ in range(plan.warmup):
            bare_flow(port, plan.timeout)
        for token in tokens[: plan.warmup]:
            checkin_flow(port, token, plan.timeout, duplicate=False)
        phases = []
        todo = tokens[plan.warmup :]
        for name, think_ms, n in (
            ("paced", plan.think_ms, plan.paced),
            ("back to back", 0, plan.checkins),
        ):
            if n <= 0:
                continue
            mine, todo = todo[:n], todo[n:]
            deadline = max(60.0, n * (1.0 + think_ms / 1000))
            bare, bare_wall = run_concurrent(
                [lambda t=think_ms: bare_flow(port, plan.timeout, t)] * n,
                plan.concurrency,
                deadline,
            )
            jobs = [
                (
                    lambda t=t, d=(k % DUPLICATE_EVERY == 0), w=think_ms: checkin_flow(
                        port, t, plan.timeout, d, w
                    )
                )
                for k, t in enumerate(mine)
            ]
            flows, wall = run_concurrent(jobs, plan.concurrency, deadline)
            phases.append((name, think_ms, bare, bare_wall, flows, wall))
    finally:
        stop_server(proc)

    def http_summary(results: list[FlowResult], wall_s: float) -> dict[str, Any]:
        ok = [r for r in results if r.ok]
        errors: dict[str, int] = {}
        for r in results:
            if not r.ok:
                errors[r.error] = errors.get(r.error, 0) + 1
        return {
            **summary([r.post_ms for r in ok if r.post_ms is not None]),
            "attempted": len(results),
            "ok": len(ok),
            "errors": errors,
            "wall_s": wall_s,
            "per_s": len(ok) / wall_s if wall_s else 0.0,
        }

    all_flows: list[FlowResult] = []
    result["phases"] = []
    for name, think_ms, bare, bare_wall, flows, wall in phases:
        result["phases"].append(
            {
                "name": name,
                "think_ms": think_ms,
                "bare_http": http_summary(bare, bare_wall),
                "checkin": http_summary(flows, wall),
            }
        )
        all_flows += flows
    keys = [r.key for r in all_flows if r.ok]
    failed_keys = [r.key for r in all_flows if not r.ok and r.key]
    warm_sessions = session_ids[: plan.warmup]
    stored = count_rows(keys, failed_keys, session_ids[plan.warmup :])
    stored["warmup_partial"] = count_rows([], [], warm_sessions)["partial"]
    result["stored"] = stored
    result["ok"] = len(keys)
    result["duplicates"] = {
        "sent": sum(1 for r in all_flows if r.duplicate_status is not None),
        "status": sorted({r.duplicate_status for r in all_flows if r.duplicate_status is not None}),
    }
    log_lines = (workdir / "server.log").read_text("utf-8", "replace").splitlines()
    result["server_5xx"] = sum(1 for line in log_lines if re.search(r'" 5\d\d \d', line))
    result["server_4xx"] = sum(1 for line in log_lines if re.search(r'" 4\d\d \d', line))
    result["db_locked"] = sum(
        1 for line in log_lines if line.startswith("django.db.utils.OperationalError: database is")
    )
    connection.close()
    if db == "postgres":
        recreate_pg(pg_url, drop_only=True)
    if plan.keep:
        result["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


# ---------------------------------------------------------------------------------- report


def fmt(x: float) -> str:
    return f"{x:7.1f}"


def report(results: list[dict[str, Any]], plan: Plan, load: tuple[float, float]) -> None:
    import django

    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"Django {django.get_version()}, {sys.platform}; load average (1 min) "
        f"{load[0]:.1f} at start, {load[1]:.1f} at end"
    )
    print(
        f"server: `bordin serve` (gunicorn: {plan.workers} workers × {plan.threads} threads) "
        f"on {HOST}; clients: {plan.concurrency} threads, http.client, a new keep-alive "
        f"connection each; paced clients wait {plan.think_ms / 2000:g}-"
        f"{plan.think_ms * 1.5 / 1000:g} s on the form, back-to-back clients not at all"
    )
    for r in results:
        v = r["volume"]
        extra = f", journal_mode={r['journal_mode']}" if "journal_mode" in r else ""
        print(
            f"{r['db']}: seeded {v['clients']} active clients, {v['sessions']:,} sessions, "
            f"{v['responses']:,} responses, {v['goal_ratings']:,} goal ratings, "
            f"{v['links']:,} links in {r['seed_s']:.1f} s{extra}"
        )
    print()
    header = f"{'db':<9}{'measurement':<46}{'n':>6}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}  notes"
    print(header)
    print("-" * len(header))
    for r in results:
        c, b = r["caseload"], r["bare_inproc"]
        q = f"{c['queries_min']}" + (
            f"-{c['queries_max']}" if c["queries_max"] != c["queries_min"] else ""
        )
        met = "met" if c["p95"] < CASELOAD_TARGET_MS else "NOT met"
        rows = [
            (
                "caseload GET / (in-process)",
                c,
                f"{q} queries/request, {c['rows']} rows; p95<{CASELOAD_TARGET_MS:.0f}: {met}",
            ),
            ("bare view (in-process)", b, f"{b['queries_max']} queries/request"),
        ]
        for phase in r["phases"]:
            paced = phase["think_ms"] > 0
            for label, key in (("bare view POST", "bare_http"), ("check-in POST", "checkin")):
                h = phase[key]
                note = f"{h['ok']}/{h['attempted']} ok, {h['per_s']:.1f}/s"
                if h["errors"]:
                    note += f", errors {h['errors']}"
                if key == "checkin":
                    met = "met" if h["p95"] < CHECKIN_TARGET_MS else "NOT met"
                    note += (
                        f"; p95<{CHECKIN_TARGET_MS:.0f}: {met}"
                        if paced
                        else f"; capacity {h['per_s'] * 3600:,.0f} check-ins/hour (no target)"
                    )
                rows.append((f"{label}, {plan.concurrency} {phase['name']}", h, note))
        for label, s, note in rows:
            print(
                f"{r['db']:<9}{label:<46}{s['n']:>6}{fmt(s['p50'])} {fmt(s['p95'])} "
                f"{fmt(s['max'])}  {note}"
            )
    print()
    for r in results:
        ratios = "; ".join(
            f"check-in POST p95 / bare HTTP POST p95, {p['name']}: "
            f"{p['checkin']['p95'] / p['bare_http']['p95']:,.1f}x"
            for p in r["phases"]
        )
        print(
            f"{r['db']}: ratio caseload p95 / bare in-process p95: "
            f"{r['caseload']['p95'] / r['bare_inproc']['p95']:,.0f}x; {ratios}"
        )
        st, dup = r["stored"], r["duplicates"]
        whole = r["ok"] + st["failed_but_stored"]
        good = (
            st["exactly_one"] == r["ok"]
            and st["rows"] == 2 * whole
            and st["links_used"] == whole
            and st["partial"] == st["warmup_partial"] == 0
        )
        print(
            f"{r['db']}: stored: {st['exactly_one']}/{r['ok']} successful check-ins have exactly "
            f"one alliance + one wellbeing response on their session; {st['failed_but_stored']} "
            f"failed POSTs stored a whole check-in, {st['partial']} sessions hold a partial or "
            f"double one ({st['rows']} rows, {st['links_used']} links used; {dup['sent']} double "
            f"submits answered {dup['status']}): {'OK' if good else 'MISMATCH'}"
        )
        print(
            f"{r['db']}: server log: {r['server_5xx']} responses 5xx, {r['server_4xx']} 4xx, "
            f"{r['db_locked']} 'database is locked' errors"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small run, < 30 s")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--caseload-clients", type=int)
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--caseload-requests", type=int)
    parser.add_argument(
        "--paced", type=int, help="check-ins by paced clients (the target's load; default 250)"
    )
    parser.add_argument(
        "--checkins", type=int, help="check-ins by back-to-back clients (capacity; default 500)"
    )
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--timeout", type=float, default=30.0, help="per socket operation")
    parser.add_argument(
        "--think-ms",
        type=int,
        help="paced clients wait 0.5-1.5x this between loading the form and sending it, as "
        "people filling it in do (default 10000)",
    )
    parser.add_argument("--workers", type=int, default=2, help="`bordin serve --workers`")
    parser.add_argument("--threads", type=int, default=4, help="`bordin serve --threads`")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and server log")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--child", choices=["sqlite", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    defaults = (
        (60, 10, 30, 20, 10, 20, 1000) if args.quick else (150, 20, 200, 500, 50, 250, 10_000)
    )
    plan = Plan(
        caseload_clients=args.caseload_clients or defaults[0],
        sessions=args.sessions or defaults[1],
        caseload_requests=args.caseload_requests or defaults[2],
        checkins=defaults[3] if args.checkins is None else args.checkins,
        concurrency=args.concurrency or defaults[4],
        timeout=args.timeout,
        warmup=2 if args.quick else 5,
        think_ms=defaults[6] if args.think_ms is None else args.think_ms,
        paced=defaults[5] if args.paced is None else args.paced,
        workers=args.workers,
        threads=args.threads,
        keep=args.keep,
    )
    if args.child:
        out = run_one_db(args.child, plan, args.pg_url)
        args.child_out.write_text(json.dumps(out), encoding="utf-8")
        return

    dbs = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    results = []
    load_start = os.getloadavg()[0]
    child_timeout = 180 if args.quick else 1200
    with tempfile.TemporaryDirectory(prefix="bordin-bench-") as tmp:
        for db in dbs:
            out = Path(tmp) / f"{db}.json"
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                *sys.argv[1:],
                "--child",
                db,
                "--child-out",
                str(out),
            ]
            started = time.perf_counter()
            # Re-runs this file with the same arguments; its own process group, so a timeout
            # stops the server it started too.
            proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)  # noqa: S603 - own script
            try:
                proc.wait(timeout=child_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                print(f"{db}: timed out after {child_timeout} s", file=sys.stderr)
                continue
            if proc.returncode != 0 or not out.exists():
                print(f"{db}: failed (exit {proc.returncode})", file=sys.stderr)
                continue
            result = json.loads(out.read_text(encoding="utf-8"))
            result["total_s"] = time.perf_counter() - started
            results.append(result)
    if not results:
        raise SystemExit("no results")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    report(results, plan, (load_start, os.getloadavg()[0]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
