"""The task registry: ``TASKS[name]`` is a lazy :class:`~envs.spec.TaskEntry`.

``make_task(name)`` resolves it into the :class:`~envs.spec.TaskSpec` algorithms receive.
Importing this package imports neither MuJoCo nor any task module.
"""

from __future__ import annotations

from envs.registry import Registry, UnknownNameError
from envs.spec import Capability, TaskEntry, TaskSpec

TASKS: Registry[TaskEntry] = Registry("task")


def register(entry: TaskEntry) -> TaskEntry:
    """Add a task to :data:`TASKS`."""
    TASKS.add(entry.name, entry)
    return entry


def make_task(name: str) -> TaskSpec:
    """Resolve a registered task (imports its module; builds one env to read the spaces)."""
    return TASKS[name].resolve()


from envs import catalog as _catalog  # noqa: E402,F401  (registers the built-in tasks)

__all__ = [
    "TASKS",
    "Capability",
    "TaskEntry",
    "TaskSpec",
    "UnknownNameError",
    "make_task",
    "register",
]
