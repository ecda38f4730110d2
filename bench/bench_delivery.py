"""Benchmark delivery: a reminder burst through the worker, and check-ins with the worker on.

Usage (from the repository root)::

    .venv/bin/python bench/bench_delivery.py            # 2,000 messages; 20 check-ins/s for 60 s
    .venv/bin/python bench/bench_delivery.py --quick    # 200 messages; 20/s for 10 s
    .venv/bin/python bench/bench_delivery.py --pg-url postgres://postgres@127.0.0.1:5432/NAME

Runs on PostgreSQL (a fresh database, dropped and created through the server's ``test``
database, dropped again at the end), with an SMTP server (aiosmtpd) in this process on
127.0.0.1. Nothing is asserted: speed is reported, with ratios against a baseline measured in
the same run.

1. **Reminder burst.** ``--burst`` due reminders (one per client, each with its own link) are
   written to the outbox; ``bordin worker --once`` (a process of its own) sends them all.
   Reported: messages per second, the worker's CPU time per message (``wait4`` rusage), and
   the baseline: the same number of two-part messages sent by Django's SMTP backend over one
   connection in this process (what the network and the SMTP server cost anyway).
2. **Check-ins with the worker running.** ``bordin serve`` (gunicorn, 2 × 4 threads) and
   ``bordin worker`` run beside each other; a session is recorded for ``rate × seconds``
   clients with an email address first (so the worker is sending their invitations during the
   run). Check-ins then arrive at ``--rate`` per second for ``--seconds`` (open loop: a new
   one starts every 1/rate s whatever the others do), each the way a phone does it (GET
   ``/c/<token>``, GET ``/c/``, POST). Reported: POST p50/p95; lost (acknowledged but not
   stored) and duplicated check-ins; server CPU time per check-in (all gunicorn processes,
   from ``/proc``), beside the same measure for the bare view ``/bench/ok`` at the same rate
   and flow shape (GET, GET, POST).
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.web.delivery_helpers import SmtpServer  # noqa: E402

from bench import proctree  # noqa: E402 - after the path set-up above
from bench.bench_web import (  # noqa: E402 - after the path set-up above
    SETTINGS,
    FlowResult,
    bare_flow,
    checkin_flow,
    count_rows,
    recreate_pg,
    start_server,
    stop_server,
    summary,
)

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/bordin_bench_delivery"


def seed(n_burst: int, n_checkins: int) -> tuple[list[str], list[int]]:
    """A clinic, its plan (no quiet hours, no intake/fit check), ``n_burst`` clients with a due
    reminder each, and ``n_checkins`` recorded sessions whose invitations are queued."""
    from datetime import time as dtime
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.db import transaction
    from django.utils import timezone

    from bordin.web.checkins.models import CheckinLink
    from bordin.web.clinic.models import Client, Clinic, Episode, Session, StaffProfile
    from bordin.web.delivery.models import Delivery, MeasurePlan, OutboxMessage
    from bordin.web.delivery.services import on_session_recorded

    clinic = Clinic.objects.create(name="Bench Clinic", time_zone="UTC")
    MeasurePlan.objects.create(
        clinic=clinic,
        send_intake=False,
        send_fit_check=False,
        quiet_start=dtime(0),
        quiet_end=dtime(0),
    )
    user = get_user_model().objects.create_user("bench-therapist", password=None)
    StaffProfile.objects.create(user=user, clinic=clinic)
    today = timezone.localdate()
    now = timezone.now()

    def clients(prefix: str, n: int) -> list[Client]:
        made = Client.objects.bulk_create(
            Client(
                clinic=clinic,
                therapist=user,
                display_name=f"{prefix} {k}",
                contact_email=f"{prefix}{k}@example.org",
                consent_email=True,
                consent_email_at=now,
            )
            for k in range(n)
        )
        episodes = Episode.objects.bulk_create(
            Episode(client=c, start=today - timedelta(days=30)) for c in made
        )
        for c, e in zip(made, episodes, strict=True):
            c.first_episode = e  # type: ignore[attr-defined]
        return made

    with transaction.atomic():
        for c in clients("burst", n_burst):
            session = Session.objects.create(episode=c.first_episode, number=1, date=today)
            link, token = CheckinLink.issue(session)
            d = Delivery.objects.create(
                client=c,
                episode=c.first_episode,
                session=session,
                kind="checkin",
                checkin_link=link,
                token=token,
                channel="email",
                issued_at=now - timedelta(days=1),
                reminders_sent=1,
            )
            OutboxMessage.objects.create(delivery=d, client=c, channel="email", purpose="reminder")
    tokens, session_ids = [], []
    for c in clients("checkin", n_checkins):
        with transaction.atomic():
            session = Session.objects.create(episode=c.first_episode, number=1, date=today)
            link, token = CheckinLink.issue(session, created_by=user)
            on_session_recorded(session, link, token, user)
        tokens.append(token)
        session_ids.append(session.pk)
    # The burst goes first: hold the check-in invitations back until part 2.
    OutboxMessage.objects.filter(purpose="invitation").update(
        next_attempt_at=now + timedelta(days=365)
    )
    return tokens, session_ids


def baseline_smtp(port: int, n: int) -> float:
    """Seconds to send ``n`` two-part messages over one SMTP connection (Django's backend)."""
    from django.core.mail import EmailMultiAlternatives, get_connection

    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=port
    )
    started = time.perf_counter()
    connection.open()
    for k in range(n):
        m = EmailMultiAlternatives(
            "Bench Clinic: your session check-in",
            "Hello,\n\nBench Clinic has a short session check-in for you.\n" * 3,
            to=[f"baseline{k}@example.org"],
            connection=connection,
        )
        m.attach_alternative("<p>Hello</p>" * 10, "text/html")
        m.send()
    connection.close()
    return time.perf_counter() - started


def burst(env: dict[str, str], smtp: SmtpServer, n: int, log: Path) -> dict[str, float]:
    before = len(smtp.inbox.messages)
    base_s = baseline_smtp(smtp.port, n)
    smtp.inbox.wait_for(before + n, timeout=60)
    before = len(smtp.inbox.messages)
    started = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bordin.cli", "worker", "--once"],
            env=env,
            stdout=out,
            stderr=out,
        )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = status
    wall = time.perf_counter() - started
    received = len(smtp.inbox.wait_for(before + n, timeout=30)) - before
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "messages": n,
        "received": received,
        "wall_s": wall,
        "per_s": received / wall,
        "cpu_ms_per_message": 1000 * cpu / max(received, 1),
        "baseline_per_s": n / base_s,
    }


def paced(
    job: Any, rate: float, seconds: float, items: list[Any]
) -> tuple[list[FlowResult], float]:
    """Start ``job(item)`` every 1/rate s (open loop) for ``seconds``; wait for all."""
    futures: list[Future[FlowResult]] = []
    with ThreadPoolExecutor(max_workers=64) as pool:
        started = time.perf_counter()
        for k, item in enumerate(items[: int(rate * seconds)]):
            delay = started + k / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(job, item))
        results = [f.result() for f in futures]
    return results, time.perf_counter() - started


def load(
    env: dict[str, str], tokens: list[str], session_ids: list[int], args: Any, log: Path
) -> dict[str, Any]:
    server, port = start_server(env, log, timeout=60)
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bordin.cli", "worker"], env=env, stdout=out, stderr=out
        )
    try:
        from django.utils import timezone

        from bordin.web.delivery.models import OutboxMessage

        OutboxMessage.objects.filter(purpose="invitation").update(next_attempt_at=timezone.now())
        n = int(args.rate * args.seconds)
        cpu0 = proctree.cpu_seconds(server.pid)
        bare, bare_wall = paced(lambda _: bare_flow(port, 30.0), args.rate, args.seconds, [0] * n)
        cpu1 = proctree.cpu_seconds(server.pid)
        done, wall = paced(
            lambda t: checkin_flow(port, t, 30.0, duplicate=False), args.rate, args.seconds, tokens
        )
        cpu2 = proctree.cpu_seconds(server.pid)
    finally:
        stop_server(worker)
        stop_server(server)
    ok = [r for r in done if r.ok]
    rows = count_rows([r.key for r in ok], [r.key for r in done if not r.ok], session_ids[:n])
    sent = OutboxMessage.objects.filter(purpose="invitation", status="sent").count()
    return {
        "checkins": len(done),
        "ok": len(ok),
        "errors": sorted({r.error for r in done if not r.ok}),
        "wall_s": wall,
        "post": summary([r.post_ms for r in ok if r.post_ms is not None]),
        "bare_post": summary([r.post_ms for r in bare if r.ok and r.post_ms is not None]),
        "bare_wall_s": bare_wall,
        "lost": len(ok) - rows["exactly_one"],
        "duplicated": rows["partial"] + max(0, rows["rows"] - 2 * rows["links_used"]),
        "cpu_ms_per_checkin": 1000 * (cpu2 - cpu1) / max(len(done), 1),
        "cpu_ms_per_bare": 1000 * (cpu1 - cpu0) / max(len(bare), 1),
        "invitations_sent_meanwhile": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 messages, 10 s of check-ins")
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0, help="check-ins per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    if args.quick:
        args.burst, args.seconds = 200, 10.0
    workdir = Path(tempfile.mkdtemp(prefix="bordin-bench-delivery-"))
    log = workdir / "server.log"
    recreate_pg(args.pg_url, drop_only=False)
    smtp = SmtpServer()
    smtp.controller.start()
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": args.pg_url,
            "BORDIN_SECRET_KEY": env.get("BORDIN_SECRET_KEY") or secrets.token_urlsafe(50),
            # As in production: free text and the reminder tokens encrypted at rest (`bordin
            # serve`'s system check refuses to start without a key when DEBUG is off).
            "BORDIN_FIELD_KEYS": env.get("BORDIN_FIELD_KEYS") or Fernet.generate_key().decode(),
            "BORDIN_DATA_DIR": str(workdir),
            "BORDIN_STATIC_ROOT": str(workdir / "static"),
            "BORDIN_LOG_LEVEL": "WARNING",
            "BORDIN_EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "BORDIN_EMAIL_HOST": "127.0.0.1",
            "BORDIN_EMAIL_PORT": str(smtp.port),
            "BORDIN_WORKER_TICK_SECONDS": "2",
            "PYTHONPATH": os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(":"),
        }
    )
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    try:
        call_command("migrate", interactive=False, verbosity=0)
        n_checkins = int(args.rate * args.seconds)
        t0 = time.perf_counter()
        tokens, session_ids = seed(args.burst, n_checkins)
        print(
            f"seeded {args.burst} due reminders and {n_checkins} links in "
            f"{time.perf_counter() - t0:.1f} s (PostgreSQL)"
        )
        b = burst(env, smtp, args.burst, log)
        print(
            f"reminder burst: {b['received']}/{b['messages']} sent in {b['wall_s']:.1f} s = "
            f"{b['per_s']:.0f} msg/s; worker CPU {b['cpu_ms_per_message']:.2f} ms/message; "
            f"baseline (Django SMTP backend, one connection) {b['baseline_per_s']:.0f} msg/s; "
            f"ratio worker/baseline throughput {b['per_s'] / b['baseline_per_s']:.2f}"
        )
        r = load(env, tokens, session_ids, args, log)
        p, bp = r["post"], r["bare_post"]
        print(
            f"check-ins at {args.rate:g}/s for {args.seconds:g} s with the worker running: "
            f"{r['ok']}/{r['checkins']} ok in {r['wall_s']:.1f} s; POST p50 {p['p50']:.1f} ms, "
            f"p95 {p['p95']:.1f} ms (target < 250); lost {r['lost']}, duplicated "
            f"{r['duplicated']}; errors {r['errors'] or 'none'}"
        )
        print(
            f"bare view same rate: POST p50 {bp['p50']:.1f} ms, p95 {bp['p95']:.1f} ms; ratio "
            f"check-in/bare p95 {p['p95'] / bp['p95']:.1f}"
        )
        print(
            f"server CPU per check-in (GET, GET, POST) {r['cpu_ms_per_checkin']:.1f} ms, per "
            f"bare flow {r['cpu_ms_per_bare']:.1f} ms, difference "
            f"{r['cpu_ms_per_checkin'] - r['cpu_ms_per_bare']:.1f} ms (target <= 10); "
            f"invitations sent meanwhile: {r['invitations_sent_meanwhile']}"
        )
        own = resource.getrusage(resource.RUSAGE_SELF)
        print(f"(bench process CPU {own.ru_utime + own.ru_stime:.1f} s; work dir {workdir})")
    finally:
        smtp.controller.stop()
        from django.db import connections

        connections.close_all()
        recreate_pg(args.pg_url, drop_only=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
