"""Tasks: LightningDataModules with declared protocols, found by name in the registry."""

from regbench.tasks import (  # noqa: F401  (registration)
    adding,
    copy_memory,
    imdb,
    mnist,
    ptb,
    seq_digits,
    sst,
    wikitext,
)
from regbench.tasks.base import InputSpec, Protocol, Task
from regbench.tasks.registry import get_task, register_task, task_names

__all__ = ["InputSpec", "Protocol", "Task", "get_task", "register_task", "task_names"]
