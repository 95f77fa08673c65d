"""User-facing errors: one line that names the file or key and says how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """Bad input (a name, key, value or file), reported before anything trains."""


def unknown(what: str, name: str, valid: Iterable[str], where: str = "") -> ConfigError:
    """An error for an unknown name, with "did you mean" and the valid names."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    prefix = f"{where}: " if where else ""
    return ConfigError(f"{prefix}unknown {what} {name!r}.{hint} Valid: {', '.join(valid)}.")


def shown(value: object, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters: an error message stays one short line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]} …{text[-1]}"
