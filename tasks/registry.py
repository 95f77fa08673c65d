"""The task registry: names to Task classes, with "did you mean" for unknown names.

Tasks of other packages register through the entry-point group `regbench.tasks`: an entry
`name = "package.module:TaskClass"` is imported the first time the registry is asked for a
task it does not know, or for the list of tasks (which every config resolution asks for).
A plugin whose task name is already taken is refused, naming both classes.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from regbench.errors import ConfigError, unknown
from regbench.tasks.base import Task

_TASKS: dict[str, type[Task]] = {}
ENTRY_POINTS = "regbench.tasks"


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a Task available under its protocol name."""
    name = cls.protocol.name
    if name in _TASKS and _TASKS[name] is not cls:
        raise ValueError(f"task {name!r} is registered twice: {_TASKS[name]} and {cls}")
    _TASKS[name] = cls
    return cls


@functools.cache
def load_plugins() -> None:
    """Import the tasks other installed packages declare under `regbench.tasks`."""
    for entry in entry_points(group=ENTRY_POINTS):
        try:
            cls = entry.load()
        except Exception as err:
            raise ConfigError(
                f"task plugin {entry.name!r} ({entry.value}) failed to load: "
                f"{type(err).__name__}: {err}"
            ) from None
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ConfigError(f"task plugin {entry.name!r} ({entry.value}) is not a Task class.")
        _register_plugin(entry.name, entry.value, cls)


def _register_plugin(entry: str, value: str, cls: type[Task]) -> None:
    """Register a plugin's task; a ConfigError naming both classes when its name is taken."""
    name = cls.protocol.name
    taken = _TASKS.get(name)
    if taken is not None and taken is not cls:
        raise ConfigError(
            f"task plugin {entry!r} ({value}) is named {name!r}, the name of the task "
            f"{taken.__module__}:{taken.__qualname__}; give its protocol another name."
        )
    _TASKS[name] = cls


def get_task(name: str, where: str = "") -> type[Task]:
    """The Task class registered under `name`; a ConfigError naming the valid ones otherwise."""
    if name not in _TASKS:
        load_plugins()
    if name not in _TASKS:
        raise unknown("task", name, _TASKS, where)
    return _TASKS[name]


def task_names() -> list[str]:
    load_plugins()
    return sorted(_TASKS)
