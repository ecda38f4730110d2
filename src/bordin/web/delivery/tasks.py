"""The worker's task (Django's tasks API, the django-tasks backport; ``bordin worker``)."""

from __future__ import annotations

from django_tasks import TaskContext, task


@task(takes_context=True)
def deliver(context: TaskContext) -> dict[str, int]:
    """One delivery pass: due follow-ups, due reminders, due messages (services.run).

    Every recorded session enqueues one (in its transaction) to wake the worker; a pass sends
    everything due, so the passes still waiting when this one starts are dropped first: their
    transactions committed before it began, so this pass sees their messages. (Running each
    of them found nothing left to do and cost the worker about 20 ms of CPU apiece: 1,200
    recorded sessions meant 24 s, issue 10.)
    """
    from django_tasks_db.models import DBTaskResult

    from bordin.web.delivery.services import run
    from bordin.web.delivery.worker import TASK_PATH

    DBTaskResult.objects.ready().filter(task_path=TASK_PATH).exclude(
        id=context.task_result.id
    ).delete()
    return run()
