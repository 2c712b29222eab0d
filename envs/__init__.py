"""The task registry: ``TASKS[name]`` is a lazy :class:`~envs.spec.TaskEntry`.

``make_task(name)`` resolves it into the :class:`~envs.spec.TaskSpec` algorithms receive.
Importing this package imports neither MuJoCo nor any task module.

Besides the registered tasks (``envs/catalog.py``), two namespaces resolve names on demand:
``gym:<id>`` (any gymnasium environment, :mod:`envs.generic`) and ``dmc:<domain>-<task>``
(the DeepMind Control Suite, :mod:`envs.dmc`).
"""

from __future__ import annotations

from envs.registry import Registry, UnknownNameError
from envs.spec import Capability, TaskEntry, TaskSpec, load

#: ``prefix -> (entry point of "rest -> TaskEntry", how to write a name)``.
NAMESPACES: dict[str, tuple[str, str]] = {
    "gym": ("envs.generic:entry", "gym:<gymnasium id> (e.g. gym:Swimmer-v5)"),
    "dmc": ("envs.dmc:entry", "dmc:<domain>-<task>[@<action repeat>] (e.g. dmc:cartpole-swingup)"),
}


class TaskRegistry(Registry[TaskEntry]):
    """The registered tasks, plus the names of :data:`NAMESPACES` built on first lookup (a bad
    one raises :class:`UnknownNameError` with the reason and the fix). Iterating lists the
    registered tasks only."""

    def __init__(self) -> None:
        super().__init__("task")
        self._built: dict[str, TaskEntry] = {}

    def __getitem__(self, name: str) -> TaskEntry:
        prefix, sep, rest = name.partition(":")
        if not sep or prefix not in NAMESPACES:
            return super().__getitem__(name)
        entry = self._built.get(name)
        if entry is None:
            try:
                entry = load(NAMESPACES[prefix][0])(rest)
            except ValueError as e:
                raise UnknownNameError(str(e)) from None
            self._built[name] = entry
        return entry

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except UnknownNameError:
            return False
        return True

    def unknown_message(self, name: str) -> str:
        forms = "; ".join(form for _, form in NAMESPACES.values())
        return f"{super().unknown_message(name)}; or any of: {forms}"


TASKS = TaskRegistry()


def register(entry: TaskEntry) -> TaskEntry:
    """Add a task to :data:`TASKS`."""
    TASKS.add(entry.name, entry)
    return entry


def make_task(name: str) -> TaskSpec:
    """Resolve a task (imports its module; builds one env to read the spaces)."""
    return TASKS[name].resolve()


from envs import catalog as _catalog  # noqa: E402,F401  (registers the built-in tasks)

__all__ = [
    "NAMESPACES",
    "TASKS",
    "Capability",
    "TaskEntry",
    "TaskRegistry",
    "TaskSpec",
    "UnknownNameError",
    "make_task",
    "register",
]
