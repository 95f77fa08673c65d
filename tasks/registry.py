"""The task registry: names to Task classes, with "did you mean" for unknown names."""

from __future__ import annotations

from regbench.errors import unknown
from regbench.tasks.base import Task

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a Task available under its protocol name."""
    name = cls.protocol.name
    if name in _TASKS and _TASKS[name] is not cls:
        raise ValueError(f"task {name!r} is registered twice: {_TASKS[name]} and {cls}")
    _TASKS[name] = cls
    return cls


def get_task(name: str, where: str = "") -> type[Task]:
    """The Task class registered under `name`; a ConfigError naming the valid ones otherwise."""
    if name not in _TASKS:
        raise unknown("task", name, _TASKS, where)
    return _TASKS[name]


def task_names() -> list[str]:
    return sorted(_TASKS)
