"""Processed tensors of a real task, cached under a key of the source content and task version.

A cache file is written to a temporary name and renamed when complete, so an interrupted or
failed build never leaves a half-written cache behind. It is `torch.save`'s zip archive with
the SHA-256 of its bytes as the archive comment (zip's own trailing field, which `torch.load`
reads past), because torch checks no checksum when it loads: a damaged entry (a flipped byte,
truncated, unreadable) is rebuilt with a warning naming the file, and one written before the
checksum quietly. A cache that cannot be written stops the run with a DataError naming it.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from regbench.tasks.sources import CACHE_ENV, DataError, cache_dir

SEAL = b"regbench-cache sha256 "
SEALED = len(SEAL) + 64  # the comment: the mark and a hex digest
LENGTH = struct.pack("<H", SEALED)  # the comment's length, the record's last field
END = b"PK\x05\x06"  # zip's end-of-central-directory record: 22 bytes, then the comment
UNSEALED = "written without a checksum"


def cached(
    task: str, version: int, key: str, build: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The processed data for (task, version, source key), built on first use (and again
    when the cached entry is damaged). `build` takes no arguments and returns a dict of what
    `torch.load(weights_only=True)` reads back: tensors, numbers, strings, lists, dicts."""
    path = cache_dir() / f"{task}-v{version}-{key}.pt"
    data = load_entry(path)
    if data is None:
        data = build()
        store_entry(path, data)
    return data


def seal(raw: bytes) -> bytes:
    """`torch.save`'s bytes with their SHA-256 as the zip comment (unchanged when the archive
    does not end as expected, so the entry is rebuilt each time rather than trusted)."""
    if raw[-22:-18] != END or raw[-2:] != b"\0\0":
        return raw
    return raw[:-2] + LENGTH + SEAL + hashlib.sha256(raw).hexdigest().encode()


def seal_problem(data: bytes) -> str | None:
    """Why a cache file's bytes cannot be trusted (UNSEALED: a plain torch.save archive, as
    regbench wrote before the seal), or None when their seal matches."""
    record = data[-SEALED - 22 : -SEALED]  # the end record, when sealed
    if record[:4] == END and record[-2:] == LENGTH:
        if not data[-SEALED:].startswith(SEAL):
            return "its zip comment is not regbench's checksum"
        actual = hashlib.sha256(memoryview(data)[: -SEALED - 2])
        actual.update(b"\0\0")
        if actual.hexdigest().encode() != data[-64:]:
            return "its SHA-256 is not the one it was written with"
        return None
    if data[-22:-18] == END and data[-2:] == b"\0\0":
        return UNSEALED
    return "truncated: it does not end as a complete archive"


def load_entry(path: Path) -> dict[str, Any] | None:
    """The cached dict at `path`; None when there is none or it cannot be trusted (a
    warning names the file then, unless it merely predates the seal)."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        return _rebuilt(path, f"unreadable: {err.strerror or type(err).__name__}")
    problem = seal_problem(data)
    if problem == UNSEALED:
        return None
    if problem:
        return _rebuilt(path, problem)
    try:
        loaded = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as err:  # another torch's format, or a pickle it refuses
        return _rebuilt(path, f"torch.load failed: {type(err).__name__}")
    return loaded if isinstance(loaded, dict) else _rebuilt(path, "not a dict")


def _rebuilt(path: Path, problem: str) -> None:
    warnings.warn(f"{path}: cache entry unusable ({problem}); rebuilding it.", stacklevel=3)
    return None


def store_entry(path: Path, data: dict[str, Any]) -> None:
    """Write `data` to `path` atomically, sealed; a DataError naming the file on failure."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(seal(buffer.getvalue()))
        os.replace(tmp, path)
    except OSError as err:
        raise DataError(
            f"{path}: cannot write the data cache ({err.strerror or type(err).__name__}); "
            f"remove what is there, or set ${CACHE_ENV} to a writable folder."
        ) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
