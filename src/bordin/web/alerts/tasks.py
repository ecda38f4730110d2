"""The worker's alert task (Django's tasks API, the django-tasks backport; ``bordin worker``).

A client's check-in raises a risk alert inside its own transaction, at once (clinical safety:
the thank-you page shows the crisis contacts and the duty contact is e-mailed). The other rules
(rupture, divergence, not on track) read the whole episode and fit or evaluate the clinic's
models; the submission enqueues this task in its transaction instead, and the worker runs them
seconds later (docs/delivery.md, "The worker and the outbox").
"""

from __future__ import annotations

from django_tasks import task

#: The task's import path, as django-tasks-db stores it (the worker prunes finished rows).
TASK_PATH = "bordin.web.alerts.tasks.checkin_alerts"


@task()
def checkin_alerts(session_id: int) -> int:
    """Run every alert rule on a session's client check-in; returns the number of alerts.

    Safe to run twice (each cause is raised once: :func:`bordin.web.alerts.rules.raise_alert`).
    """
    from bordin.web.alerts.rules import evaluate_stored_checkin

    return len(evaluate_stored_checkin(session_id))
