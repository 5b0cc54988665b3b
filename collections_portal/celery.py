"""The Celery application.

Configuration comes from Django settings under the ``CELERY_`` namespace (see
``settings/base.py``: broker, reliable-delivery options, beat scheduler); tasks are
discovered in each installed app's ``tasks.py``.
"""

import inspect
import logging
import logging.config
import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_failure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collections_portal.settings.local")

app = Celery("collections_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logger = logging.getLogger("collections_portal.tasks")


# --- Logging ------------------------------------------------------------------------------
# Keep Django's LOGGING in the worker and beat (JSON in production, phone numbers masked):
# with a receiver on setup_logging, Celery leaves the root logger alone instead of
# installing its own plain handler.
@setup_logging.connect
def _use_django_logging(**kwargs: Any) -> None:
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


# Task arguments that name the cases a task works on (tasks take ids only, never personal data).
_CASE_ARGUMENTS = ("case_id", "case_ids")
_MESSAGE_ARGUMENTS = ("message_id", "message_ids")


def task_case_ids(task: Any, args: Any, kwargs: Any) -> list[int]:
    """The ids of the cases a task invocation concerned, read from its arguments: case ids
    directly, outbox message ids through one indexed query. Empty when it concerned none."""
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {})).arguments
    except (TypeError, ValueError):
        return []

    def ids(names: tuple[str, ...]) -> list[int]:
        found: list[int] = []
        for name in names:
            value = bound.get(name)
            if isinstance(value, int):
                found.append(value)
            elif isinstance(value, list | tuple):
                found.extend(v for v in value if isinstance(v, int))
        return found

    case_ids = ids(_CASE_ARGUMENTS)
    message_ids = ids(_MESSAGE_ARGUMENTS)
    if message_ids:
        from django.apps import apps

        if apps.is_installed("notifications"):
            message_model = apps.get_model("notifications", "OutboundMessage")
            case_ids += message_model.objects.filter(pk__in=message_ids).values_list("case_id", flat=True)
    return sorted(set(case_ids))


@task_failure.connect
def _log_task_failure(
    sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, **kwargs: Any
) -> None:
    """One ERROR line per failed task, with the case ids it concerned, so a failure can be
    traced to the case page. A failure to find them must not hide the original error."""
    try:
        case_ids = task_case_ids(sender, kwargs.get("args"), kwargs.get("kwargs"))
    except Exception:
        case_ids = []
    logger.error(
        "task %s[%s] failed for cases %s: %s: %s",
        getattr(sender, "name", sender),
        task_id,
        case_ids or "(none)",
        type(exception).__name__,
        exception,
        extra={"task_name": getattr(sender, "name", ""), "task_id": task_id, "case_ids": case_ids},
        exc_info=(type(exception), exception, exception.__traceback__) if exception is not None else None,
    )
