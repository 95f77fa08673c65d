"""Where a real task's data comes from: local files in the original formats, or the hub.

A run reads local files when a data folder is given (`--data-dir` or `$REGBENCH_DATA`), laid
out as the original distributions are (`ptb/ptb.train.txt`, `mnist/*-ubyte.gz`, …); every file
is checked against its known size or hash first. Without one, the task loads its Hugging Face
hub dataset through `datasets`; when the hub cannot be reached the run stops at once with a
message saying how to get the data, instead of `datasets`' retries.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import socket
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from regbench.errors import ConfigError

DATA_ENV = "REGBENCH_DATA"
CACHE_ENV = "REGBENCH_CACHE"
HUB_HOST = ("huggingface.co", 443)


class DataError(ConfigError):
    """A missing, truncated, corrupted or wrong-format data file, or unreachable data."""


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The local data folder: the explicit one, else $REGBENCH_DATA, else None (hub)."""
    value = explicit or os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: data folder not found (from --data-dir or ${DATA_ENV}).")
    return path


def cache_dir() -> Path:
    """Where processed tensors are cached ($REGBENCH_CACHE, default ~/.cache/regbench)."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "regbench")


def require_file(path: Path, what: str, hint: str) -> Path:
    """`path`, if it is a file; a DataError naming it when it is missing or something else."""
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as err:  # a folder on the way that cannot be searched
        raise unreadable(path, what, err) from None
    if not exists:
        raise DataError(f"{path}: missing {what}; {hint}")
    if not is_file:
        raise DataError(f"{path}: not a regular file but {what} expected; {hint}")
    return path


def unreadable(path: Path, what: str, err: OSError) -> DataError:
    return DataError(
        f"{path}: cannot read {what} ({err.strerror or type(err).__name__}); "
        "check its permissions, or replace it with the original."
    )


def read_bytes(path: Path, what: str, hint: str) -> bytes:
    """The content of a data file; a DataError naming it when it is missing or unreadable."""
    require_file(path, what, hint)
    try:
        return path.read_bytes()
    except OSError as err:
        raise unreadable(path, what, err) from None


def read_text(path: Path, what: str, hint: str) -> str:
    """A data file as UTF-8 text (read_bytes' checks, plus the encoding)."""
    data = read_bytes(path, what, hint)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text (byte {err.start:,}); {what} expected; {hint}"
        ) from None


def gunzip(path: Path, data: bytes) -> bytes:
    """`data` (read from `path`) decompressed; a DataError naming the file when it is not a
    complete, intact gzip stream (truncated, a flipped byte, another format)."""
    try:
        return gzip.decompress(data)
    except EOFError:
        problem = "it ends early: truncated"
    except (OSError, zlib.error) as err:  # BadGzipFile (header, CRC, size), deflate errors
        problem = f"corrupted: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
    raise DataError(f"{path}: not a complete gzip file ({problem}); replace it with the original.")


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, data).hexdigest()


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content (how some reference copies publish their hashes)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_digest(path: Path, data: bytes, expected: str, algorithm: str = "sha256") -> None:
    actual = git_blob_sha1(data) if algorithm == "git" else digest(data, algorithm)
    if actual != expected:
        raise DataError(
            f"{path}: {algorithm} {actual[:12]}… is not the expected {expected[:12]}… "
            f"({len(data):,} bytes): the file is truncated, corrupted or another version; "
            "replace it with the original."
        )


def fingerprint(parts: Iterable[object]) -> str:
    """A short key from the content hashes (or hub identifiers) of a task's sources."""
    return digest("\n".join(map(str, parts)).encode())[:16]


def _datasets() -> Any:
    """`datasets`, imported late (the flags above are read at import) and kept quiet."""
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _go_offline() -> None:
    """Make `datasets` and `huggingface_hub` use only their caches: through the environment
    for a later import, and through their settings if they are imported already."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets.config
    import huggingface_hub.constants

    datasets.config.HF_DATASETS_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True


def hub_key(data: Any) -> str:
    """A content key of a loaded hub DatasetDict, from `datasets`' own fingerprints (which
    change with the data files)."""
    return fingerprint(sorted(f"{name}:{split._fingerprint}" for name, split in data.items()))


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(HUB_HOST, timeout=timeout).close()
    except OSError:
        return False
    return True


def load_hub(task: str, path: str, local_hint: str, **kwargs: Any) -> Any:
    """`datasets.load_dataset(path, **kwargs)`, offline from the HF cache when the hub is
    unreachable; a DataError with instructions when neither works."""
    if not hub_reachable():
        _go_offline()
    datasets = _datasets()
    try:
        return datasets.load_dataset(path, **kwargs)
    except (ConnectionError, OSError, ValueError) as err:
        where = "the Hugging Face hub is unreachable" if not hub_reachable() else str(err)
        raise DataError(
            f"{task}: cannot load hub dataset {path!r} ({where.splitlines()[0]}). Point "
            f"--data-dir or ${DATA_ENV} at a folder with {local_hint}, or run once online."
        ) from None


def load_text_files(files: dict[str, Path]) -> dict[str, list[str]]:
    """The lines of local text files (gzip allowed), read through `datasets`' text builder."""
    if not hub_reachable():
        _go_offline()  # local files need no hub; never wait for one that cannot answer
    datasets = _datasets()
    data = {split: str(path) for split, path in files.items()}
    loaded = datasets.load_dataset("text", data_files=data, keep_in_memory=True)
    return {split: loaded[split]["text"] for split in files}
