"""``bordin worker``: django-tasks-db's worker, plus a ticker that wakes it for due work.

Tasks are enqueued when a link is sent (in the link's transaction); the ticker adds a
``deliver`` task every ``BORDIN_WORKER_TICK_SECONDS`` (unless one is waiting already) so that
reminders, follow-ups, retries and messages whose claim expired after a crash go out without
anyone recording a session. Finished task rows older than an hour are pruned.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

logger = logging.getLogger(__name__)
TASK_PATH = "bordin.web.delivery.tasks.deliver"


def tick() -> None:
    """Enqueue a ``deliver`` pass unless one is waiting; prune old finished task rows."""
    from django_tasks_db.models import DBTaskResult

    from bordin.web.delivery.tasks import deliver

    waiting = DBTaskResult.objects.ready().filter(task_path=TASK_PATH).exists()
    if not waiting:
        deliver.enqueue()
    from bordin.web.alerts.tasks import TASK_PATH as ALERTS_TASK_PATH

    DBTaskResult.objects.filter(
        finished_at__lt=timezone.now() - timedelta(hours=1),
        task_path__in=[TASK_PATH, ALERTS_TASK_PATH],
    ).delete()


def _ticker(seconds: float, stop: threading.Event, parent: int | None) -> None:
    while not stop.wait(seconds):
        if parent is not None and os.getppid() != parent:
            os._exit(0)  # started by `bordin demo`, which is gone: nothing left to serve
        try:
            close_old_connections()
            tick()
        except Exception:  # keep ticking: a locked database or a restart of PostgreSQL
            logger.exception("worker tick failed")


def run_worker(*, interval: float = 1.0, tick_seconds: float | None = None) -> None:
    """Run until SIGINT/SIGTERM (graceful) or SIGKILL (the outbox makes that safe)."""
    from django_tasks_db.management.commands.db_worker import Worker

    seconds = float(tick_seconds or settings.BORDIN_WORKER_TICK_SECONDS)
    # One line per task run every few seconds is noise: keep warnings and errors only.
    logging.getLogger("django_tasks").setLevel(logging.WARNING)
    logging.getLogger("django_tasks_db").setLevel(logging.WARNING)
    parent = os.environ.get("BORDIN_WORKER_PARENT_PID")
    stop = threading.Event()
    tick()
    threading.Thread(
        target=_ticker, args=(seconds, stop, int(parent) if parent else None), daemon=True
    ).start()
    worker = Worker(
        queue_names=["default"],
        interval=interval,
        batch=False,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=f"bordin-{os.getpid()}",
        excluded_queue_names=[],
    )
    worker.configure_signals()
    logger.info("bordin worker started (tick %.1f s)", seconds)
    try:
        worker.run()
    finally:
        stop.set()


def drain() -> int:
    """Run every ready task in this process with django-tasks-db's worker, then return the
    number run (``bordin worker --once``, and tests: unlike the worker's loop this keeps the
    database connection, so it runs inside a test's transaction too)."""
    from django.db import transaction
    from django_tasks_db.management.commands.db_worker import Worker
    from django_tasks_db.models import DBTaskResult

    worker = Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id=f"bordin-once-{os.getpid()}",
        excluded_queue_names=[],
    )
    ran = 0
    while True:
        with transaction.atomic():
            result = DBTaskResult.objects.ready().filter(backend_name="default").get_locked()
            if result is None:
                return ran
            result.claim(worker.worker_id)
        worker.run_task(result)
        ran += 1
