"""The regularizer registry: the built-ins, and those other packages declare by entry point.

A package adds a regularizer by declaring its class under the entry-point group
`regbench.variants` (`name = "package.module:Class"`). The registry imports every declared
class the first time anything reads it (a config's resolution, `regbench variants`, a worker
building its network), once per process, and checks what a job's identity needs: a
Regularizer subclass whose `key` no built-in regularizer or recipe has, a `version` of its
own, `defaults` that are config values (numbers, booleans, strings) and `cells` among
lstm/gru/rnn. A plugin that fails a check, or fails to import, stops every command with one
line naming the entry point, its distribution and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Literal

from regbench.errors import ConfigError
from regbench.models.variants.base import CELLS, Regularizer

ENTRY_POINTS = "regbench.variants"
KEY = re.compile(r"[a-z][a-z0-9_]*\Z")  # no '+' (composition) and no '.' (config keys)
VALUE_TYPES = (bool, int, float, str)  # what a config field can hold (plan/config.py)


class Registry(Mapping[str, type[Regularizer]]):
    """Regularizer keys to classes: the built-ins, then the plugins, loaded on first read.

    `reserved` holds the other names a variant can have (the recipes): a plugin may not
    take one. `reload()` forgets the plugins, so the next read imports them again."""

    def __init__(self, builtins: Iterable[type[Regularizer]], reserved: Collection[str]) -> None:
        self._classes = {cls.key: cls for cls in builtins}
        self._builtins = frozenset(self._classes)
        self._reserved = reserved
        self._origins: dict[str, str] = {}
        self._state: Literal["unloaded", "loading", "loaded"] = "unloaded"

    def __getitem__(self, key: str) -> type[Regularizer]:
        self.load()
        return self._classes[key]

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(self._classes)

    def __len__(self) -> int:
        self.load()
        return len(self._classes)

    def __repr__(self) -> str:
        return f"Registry({sorted(self._classes)}, state={self._state})"

    def origin(self, key: str) -> str | None:
        """Where a plugin regularizer comes from (entry point and distribution); None for a
        built-in."""
        self.load()
        return self._origins.get(key)

    def load(self) -> None:
        """Import the plugins once; nothing is registered unless all of them pass. A plugin
        reading the registry while it is imported sees the built-ins."""
        if self._state != "unloaded":
            return
        self._state = "loading"
        try:
            found: dict[str, tuple[type[Regularizer], str]] = {}
            for entry in entry_points(group=ENTRY_POINTS):
                cls = _load(entry)
                self._check_key(cls.key, entry, found)
                found[cls.key] = (cls, _describe(entry))
        except BaseException:
            self._state = "unloaded"  # the next read raises the same error again
            raise
        for key, (cls, where) in found.items():
            self._classes[key] = cls
            self._origins[key] = where
        self._state = "loaded"

    def reload(self) -> None:
        """Forget the plugins; the next read imports the installed ones again."""
        for key in self._origins:
            del self._classes[key]
        self._origins.clear()
        self._state = "unloaded"

    def _check_key(
        self, key: str, entry: EntryPoint, found: Mapping[str, tuple[type, str]]
    ) -> None:
        if key in self._builtins or key in self._reserved:
            kind = "regularizer" if key in self._builtins else "recipe"
            raise ConfigError(
                f"{_describe(entry)} has the key {key!r}, the name of a built-in {kind}; "
                f"give its class another `key` (and its entry point that name), or uninstall "
                f"{_distribution(entry)}."
            )
        if key in found:
            raise ConfigError(
                f"{_describe(entry)} has the key {key!r}, as has {found[key][1]}; give one "
                "of them another `key`, or uninstall one."
            )


def _load(entry: EntryPoint) -> type[Regularizer]:
    """The entry point's class, checked; a one-line ConfigError otherwise."""
    try:
        cls = entry.load()
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConfigError(
            f"{_describe(entry)} failed to import: {type(err).__name__}: {first}; fix it or "
            f"uninstall {_distribution(entry)}."
        ) from None
    problem = _problem(cls)
    if problem:
        raise ConfigError(f"{_describe(entry)}: {problem}.")
    return cls


def _problem(cls: object) -> str | None:
    """What a plugin class lacks for the registry and for job identity, or None."""
    if not (isinstance(cls, type) and issubclass(cls, Regularizer)):
        return "is not a Regularizer class (regbench.models.variants.Regularizer)"
    key = getattr(cls, "key", None)
    if not isinstance(key, str) or not KEY.match(key):
        return f"`key` must be a lower-case name of letters, digits and '_', got {key!r}"
    if not any("version" in vars(c) for c in cls.__mro__ if c is not Regularizer):
        return "sets no `version`; declare one (an int, bumped whenever its numbers change)"
    if isinstance(cls.version, bool) or not isinstance(cls.version, int) or cls.version < 1:
        return f"`version` must be an int of at least 1, got {cls.version!r}"
    return _defaults_problem(cls) or _structure_problem(cls)


def _defaults_problem(cls: type[Regularizer]) -> str | None:
    if not isinstance(cls.defaults, Mapping):
        return "`defaults` must map each parameter's name to its default value"
    for name, value in cls.defaults.items():
        if not (isinstance(name, str) and name.isidentifier()):
            return f"`defaults` has the parameter name {name!r}; use a Python identifier"
        if not isinstance(value, VALUE_TYPES):
            return (
                f"`defaults[{name!r}]` is {value!r}; a default must be a number, a bool or "
                "a string (it types the config key)"
            )
    extra = set(cls.choices) - set(cls.defaults)
    if extra:
        return f"`choices` names {sorted(extra)}, which are not in `defaults`"
    return None


def _structure_problem(cls: type[Regularizer]) -> str | None:
    cells = cls.cells
    if not cells or not isinstance(cells, tuple) or not set(cells) <= set(CELLS):
        return f"`cells` must be a non-empty tuple of {', '.join(CELLS)}, got {cells!r}"
    if not isinstance(cls.claims, tuple) or not all(isinstance(c, str) for c in cls.claims):
        return f"`claims` must be a tuple of strings, got {cls.claims!r}"
    return None


def _distribution(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    return f"the distribution {dist.name!r}" if dist is not None else "its distribution"


def _describe(entry: EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    source = f", distribution {dist.name!r}" if dist is not None else ""
    return f"variant plugin {entry.name!r} ({entry.value}{source})"
