"""Reading a YAML input file (a grid, a SLURM config) so that bad input is one line.

Safe loading only (no Python objects); a file that is not UTF-8 text, larger than
MAX_BYTES, not valid YAML, with a key given twice in one mapping, or whose aliases expand to
more than MAX_NODES values is refused with a ConfigError naming the file (and the line, where
YAML knows it). Aliases are resolved by reference, so a "billion laughs" file loads cheaply;
the bound is checked by walking the loaded value once, counting shared values every time
they are reached, and stopping at the bound.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from regbench.errors import ConfigError

MAX_BYTES = 1_000_000
MAX_NODES = 100_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        self.flatten_mapping(node)  # merge keys (<<: *anchor) first, as the base class does
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                continue  # unhashable: the base class reports it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> Any:
    """The YAML value in `path`, checked as above."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the file ({err.strerror}).") from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{path}: {len(data):,} bytes; an input file is at most {MAX_BYTES:,}.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8); expected YAML.") from None
    try:
        value = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{line}: invalid YAML: {problem}.") from None
    if _exceeds(value, MAX_NODES):
        raise ConfigError(
            f"{path}: its aliases expand to more than {MAX_NODES:,} values; write the "
            "values out or use fewer aliases."
        )
    return value


def _exceeds(value: Any, limit: int) -> bool:
    """Whether walking `value` (shared parts counted each time) reaches `limit` values."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        count += 1
        if count > limit:
            return True
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
