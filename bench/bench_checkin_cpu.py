"""CPU time and SQL queries of one client check-in, in-process, request by request.

Usage (from the repository root)::

    .venv/bin/python bench/bench_checkin_cpu.py                  # PostgreSQL, 200 check-ins
    .venv/bin/python bench/bench_checkin_cpu.py --db sqlite
    .venv/bin/python bench/bench_checkin_cpu.py --profile /tmp/checkin.prof   # cProfile too
    .venv/bin/python bench/bench_checkin_cpu.py --pg-url postgres://postgres@127.0.0.1:5432/NAME

The data is ``bench/bench_web.py``'s caseload (one therapist, ``--clients`` active clients with
``--sessions`` weekly sessions, answers, goals, ratings, alerts); each check-in follows a fresh
link issued for a new session the way recording a session issues it (the delivery outbox
included). The three requests of a check-in run through Django's WSGI handler itself (the whole
middleware stack, CSRF enforced, cookies kept as a browser keeps them): GET ``/c/<token>``,
GET ``/c/`` (the form), POST ``/c/``. Reported per request: the median and p90 of this
process's CPU time (``time.process_time``, so the noise of other work on a shared machine is
mostly left out), the wall time, and the number of SQL queries; the same for the bare view
``/bench/ok`` (GET, GET, POST) as the baseline, measured in the same run. PostgreSQL: the
database in ``--pg-url`` is dropped and created afresh, and dropped at the end. Nothing is
asserted: speed is reported, not tested.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.bench_web import (  # noqa: E402 - after the path set-up above
    HOST,
    SETTINGS,
    checkin_form_data,
    issue_links,
    recreate_pg,
    seed_caseload,
)

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/bordin_bench_checkin_cpu"


class WsgiBrowser:
    """A browser talking straight to Django's WSGI handler: cookies kept, nothing mocked."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, str, str]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": HOST,
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": HOST,
            "HTTP_HOST": HOST,
            "HTTP_USER_AGENT": "bordin-bench",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "CONTENT_LENGTH": str(len(body)),
        }
        if body:
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
            environ["HTTP_ORIGIN"] = f"http://{HOST}"
        if self.cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        status: list[str] = []
        headers: list[tuple[str, str]] = []

        def start_response(s: str, h: list[tuple[str, str]], exc_info: Any = None) -> None:
            status.append(s)
            headers.extend(h)

        result = self.handler(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        location = ""
        for name, value in headers:
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
            elif name.lower() == "location":
                location = value
        return int(status[0].split()[0]), location, content.decode("utf-8", "replace")


class Meter:
    """CPU, wall time and SQL queries per request, by label."""

    def __init__(self) -> None:
        self.cpu: dict[str, list[float]] = {}
        self.wall: dict[str, list[float]] = {}
        self.queries: dict[str, list[int]] = {}
        self.last_sql: dict[str, list[str]] = {}

    def __call__(self, label: str, call: Callable[[], Any]) -> Any:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            out = call()
            cpu1, wall1 = time.process_time(), time.perf_counter()
        self.cpu.setdefault(label, []).append((cpu1 - cpu0) * 1000)
        self.wall.setdefault(label, []).append((wall1 - wall0) * 1000)
        self.queries.setdefault(label, []).append(len(ctx))
        self.last_sql[label] = [q["sql"] for q in ctx.captured_queries]
        return out


def checkin(browser: WsgiBrowser, meter: Meter, token: str) -> None:
    status, location, _ = meter("GET /c/<token>", lambda: browser.request("GET", f"/c/{token}"))
    if status != 302 or location != "/c/":
        raise RuntimeError(f"link: {status} {location}")
    status, _, html = meter("GET /c/ (form)", lambda: browser.request("GET", "/c/"))
    if status != 200:
        raise RuntimeError(f"form: {status}")
    data, _ = checkin_form_data(html)
    body = urlencode(data).encode()
    status, _, page = meter("POST /c/", lambda: browser.request("POST", "/c/", body))
    if status != 200 or "<h1>Thank you</h1>" not in page:
        raise RuntimeError(f"post: {status}")


def bare(browser: WsgiBrowser, meter: Meter) -> None:
    meter("bare GET", lambda: browser.request("GET", "/bench/ok"))
    meter("bare GET", lambda: browser.request("GET", "/bench/ok"))
    meter("bare POST", lambda: browser.request("POST", "/bench/ok", b"x=1"))


def wrap(names: list[str]) -> dict[str, list[float]]:
    """Replace each ``module:function`` by a wrapper recording its CPU milliseconds per call."""
    import functools
    import importlib

    samples: dict[str, list[float]] = {}
    for name in names:
        module_name, _, attr = name.partition(":")
        owner: Any = importlib.import_module(module_name)
        *path, last = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, last)
        mine = samples.setdefault(name, [])

        def timed(*a: Any, _f: Any = original, _s: list[float] = mine, **k: Any) -> Any:
            started = time.process_time()
            try:
                return _f(*a, **k)
            finally:
                _s.append((time.process_time() - started) * 1000)

        setattr(owner, last, functools.wraps(original)(timed))
    return samples


def seed(clients: int, sessions: int, n_links: int) -> list[str]:
    from django.db import connection, transaction

    from bordin.web.checkins.models import CheckinLink
    from bordin.web.clinic.models import Session
    from bordin.web.delivery.services import on_session_recorded

    user = seed_caseload(clients, sessions)
    tokens, session_ids = issue_links(user, n_links)
    # Recording a session hands its link to the delivery outbox: do what it does.
    with transaction.atomic():
        for session in Session.objects.filter(pk__in=session_ids).select_related(
            "episode__client__clinic"
        ):
            link = CheckinLink.objects.filter(session=session).first()
            on_session_recorded(session, link, None, user)
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("ANALYZE")
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--checkins", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--clients", type=int, default=60)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the check-ins here")
    parser.add_argument("--sql", action="store_true", help="print the last check-in's SQL")
    parser.add_argument(
        "--split",
        nargs="+",
        default=[],
        metavar="MODULE:FUNCTION",
        help="also report the CPU time of these functions (wrapped by name), per call",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bordin-bench-cpu-"))
    if args.db == "postgres":
        recreate_pg(args.pg_url, drop_only=False)
        url = args.pg_url
    else:
        url = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "DATABASE_URL": url,
            "BORDIN_SECRET_KEY": os.environ.get("BORDIN_SECRET_KEY") or secrets.token_urlsafe(50),
            "BORDIN_DATA_DIR": str(workdir),
            "BORDIN_STATIC_ROOT": str(workdir / "static"),
            "BORDIN_LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.management import call_command
    from django.db import connections

    try:
        call_command("migrate", interactive=False, verbosity=0)
        tokens = seed(args.clients, args.sessions, args.warmup + args.checkins)
        handler = WSGIHandler()
        split = wrap(args.split)
        warm = Meter()
        for token in tokens[: args.warmup]:
            checkin(WsgiBrowser(handler), warm, token)
            bare(WsgiBrowser(handler), warm)
        meter = Meter()
        for samples in split.values():
            samples.clear()
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        for token in tokens[args.warmup :]:
            if profiler is not None:
                profiler.enable()
            checkin(WsgiBrowser(handler), meter, token)
            if profiler is not None:
                profiler.disable()
            bare(WsgiBrowser(handler), meter)
        if profiler is not None:
            profiler.dump_stats(args.profile)
    finally:
        connections.close_all()
        if args.db == "postgres":
            recreate_pg(args.pg_url, drop_only=True)

    if args.sql:
        for label in ("GET /c/<token>", "GET /c/ (form)", "POST /c/"):
            print(f"--- {label}")
            for k, sql in enumerate(meter.last_sql[label], 1):
                print(f"{k:3}. {sql[:400]}")
    load = os.getloadavg()
    print(
        f"{args.db}: {args.checkins} check-ins in-process (WSGI handler, whole middleware), "
        f"{args.clients} clients x {args.sessions} sessions; load average {load[0]:.1f}"
    )
    print(f"{'request':<18}{'CPU p50':>9}{'CPU p90':>9}{'wall p50':>10}{'queries':>9}")

    def row(label: str, cpu: list[float], wall: list[float], queries: str) -> None:
        p90 = statistics.quantiles(cpu, n=10)[8]
        print(
            f"{label:<18}{statistics.median(cpu):>9.2f}{p90:>9.2f}"
            f"{statistics.median(wall):>10.2f}{queries:>9}"
        )

    for label in meter.cpu:
        q = meter.queries[label]
        row(label, meter.cpu[label], meter.wall[label], f"{min(q)}-{max(q)}")
    for name, samples in split.items():
        if samples:
            print(f"  {name}: {len(samples)} calls, CPU p50 {statistics.median(samples):.2f} ms")
    steps = ["GET /c/<token>", "GET /c/ (form)", "POST /c/"]
    per_checkin = [sum(xs) for xs in zip(*(meter.cpu[s] for s in steps), strict=True)]
    per_wall = [sum(xs) for xs in zip(*(meter.wall[s] for s in steps), strict=True)]
    bare_cpu = meter.cpu["bare GET"]
    per_bare = [
        bare_cpu[2 * k] + bare_cpu[2 * k + 1] + p for k, p in enumerate(meter.cpu["bare POST"])
    ]
    row("check-in (3 req)", per_checkin, per_wall, "")
    row("bare flow (3 req)", per_bare, per_bare, "")
    print(
        f"ratio check-in / bare flow CPU (medians): "
        f"{statistics.median(per_checkin) / statistics.median(per_bare):.1f}x"
    )


if __name__ == "__main__":
    main()
