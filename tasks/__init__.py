"""Tasks: LightningDataModules with declared protocols, found by name in the registry."""

from regbench.tasks import adding, copy_memory, seq_digits  # noqa: F401  (registration)
from regbench.tasks.base import InputSpec, Protocol, Task
from regbench.tasks.registry import get_task, register_task, task_names

__all__ = ["InputSpec", "Protocol", "Task", "get_task", "register_task", "task_names"]
