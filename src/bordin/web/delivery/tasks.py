"""The worker's task (Django's tasks API, the django-tasks backport; ``bordin worker``)."""

from __future__ import annotations

from django_tasks import task


@task()
def deliver() -> dict[str, int]:
    """One delivery pass: due follow-ups, due reminders, due messages (services.run)."""
    from bordin.web.delivery.services import run

    return run()
