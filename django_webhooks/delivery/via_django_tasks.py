"""The Django Tasks dispatcher (``DISPATCHER = "django_tasks"``): our tasks on any Tasks backend.

``django.tasks`` on Django 6.0 and later, the ``django_tasks`` backport on Django 5.2; the
``default`` backend of ``settings.TASKS``, queue ``QUEUE`` (or the framework's ``"default"``).
With django-tasks-db the push is an ORM insert: inside the caller's transaction it commits or
rolls back with it. Tasks has no retries of its own and takes JSON arguments only; ours take none,
and a task that is lost loses nothing (the sweeper finds the work), so neither matters.

Loaded by :mod:`django_webhooks.delivery.broker` only when this is the dispatcher; the checks
(E019, E020, W013) use the same helpers to tell what is wrong.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

from django.utils.module_loading import import_string

from ..conf import webhooks_settings

#: The Task objects the framework imports by path (``Task.module_path``, stored with each task);
#: built on first use by :func:`django_webhooks.tasks.__getattr__`.
TASK_PATHS = {
    "process_events": "django_webhooks.tasks.process_events_task",
    "deliver_due": "django_webhooks.tasks.deliver_due_task",
    "sweep": "django_webhooks.tasks.sweep_task",
    "prune": "django_webhooks.tasks.prune_task",
    "verify_endpoints": "django_webhooks.tasks.verify_endpoints_task",
}


def framework() -> ModuleType:
    """``django.tasks`` (Django 6.0+), else the ``django_tasks`` backport; ImportError if neither."""
    try:
        return importlib.import_module("django.tasks")
    except ImportError:
        return importlib.import_module("django_tasks")


def backend() -> Any:
    """The ``default`` backend of ``settings.TASKS`` (built once per thread by the framework)."""
    tasks = framework()
    return tasks.task_backends[tasks.DEFAULT_TASK_BACKEND_ALIAS]


def queue_name() -> str:
    return webhooks_settings.QUEUE or framework().DEFAULT_TASK_QUEUE_NAME


def is_immediate(task_backend: Any) -> bool:
    """Whether ``task_backend`` runs a task inside the call that enqueues it (the Immediate backend)."""
    immediate = importlib.import_module(f"{framework().__name__}.backends.immediate").ImmediateBackend
    return isinstance(task_backend, immediate)


def build_task(func: Callable[[], Any]) -> Any:
    """A framework ``Task`` for ``func`` (a module-level function with no arguments) on our queue."""
    return framework().task(func, queue_name=queue_name())


def enqueue(name: str, run_after: datetime | None = None) -> None:
    """Push task ``name`` (a key of :data:`TASK_PATHS`), not before ``run_after`` if given."""
    task = import_string(TASK_PATHS[name]).using(queue_name=queue_name(), run_after=run_after)
    task.enqueue()


def supports_defer() -> bool:
    """Whether the backend honours ``run_after`` (django-tasks-db does)."""
    return bool(backend().supports_defer)


def workers() -> int:
    """How many workers take our tasks: the framework does not know, so ``TASKS_WORKERS`` says."""
    return int(webhooks_settings.TASKS_WORKERS)


def runs_inline() -> bool:
    return is_immediate(backend())
