"""Read the records of a W&B offline run file (run-<id>.wandb), for the tests.

wandb ≥ 0.2x writes them from its Go core and no longer ships a Python reader; the format is
a LevelDB-style log: a 7-byte header (':W&B', magic, version), then 32 KiB blocks of records
(crc32, length, type; FULL=1, FIRST=2, MIDDLE=3, LAST=4) carrying protobuf `Record`s.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK, HEADER = 32768, 7


def records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        pending += data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def summary(run_dir: Path) -> dict[str, Any]:
    """Run ids, config keys and history keys over every offline run file of a run dir."""
    ids, config, history = set(), set(), set()
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.add(record.run.run_id)
                config |= {u.key for u in record.run.config.update}
                group, job_type, tags = record.run.run_group, record.run.job_type, record.run.tags
            elif kind == "history":
                history |= {i.key or "/".join(i.nested_key) for i in record.history.item}
    return {
        "ids": ids,
        "config": config,
        "history": history,
        "group": group,
        "job_type": job_type,
        "tags": list(tags),
    }
