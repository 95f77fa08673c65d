"""Tiny data sets written in the original file formats, for the real tasks' unit tests."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np

PTB_LINES = {
    "train": [" the cat sat on the mat ", " a dog <unk> the cat ", " the mat sat "] * 4,
    "valid": [" the dog sat ", " a cat "],
    "test": [" the cat <unk> ", " a mat sat on a dog "],
}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def write_ptb(root: Path) -> dict[str, str]:
    """ptb/ptb.*.txt as in the Mikolov files; returns their md5s by regbench split name."""
    folder = root / "ptb"
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, lines in PTB_LINES.items():
        data = "".join(line + "\n" for line in lines).encode()
        (folder / f"ptb.{name}.txt").write_bytes(data)
        hashes[{"valid": "val"}.get(name, name)] = md5(data)
    return hashes


def write_ptb_char(root: Path) -> dict[str, str]:
    """ptb_char/ptb.char.* (train gzipped), each ending in the stray "\\n " of the originals."""
    folder = root / "ptb_char"
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for name, lines in PTB_LINES.items():
        text = "\n ".join(" ".join("_".join(ln.split())) + " " for ln in lines) + "\n "
        data = text.encode()
        path = folder / f"ptb.char.{name}.txt"
        if name == "train":
            path.with_suffix(".txt.gz").write_bytes(gzip.compress(data))
        else:
            path.write_bytes(data)
        hashes[{"valid": "val"}.get(name, name)] = git_sha1(data)
    return hashes


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 2051 if array.ndim == 3 else 2049
    return struct.pack(">I" + "I" * array.ndim, magic, *array.shape) + array.tobytes()


def write_mnist(root: Path, n_train: int = 60, n_test: int = 20) -> dict[str, tuple]:
    """mnist/*-ubyte.gz with random images; returns the IDX table for these files."""
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    table = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            table[name] = (
                hashlib.sha256(data).hexdigest(),
                2051 if array.ndim == 3 else 2049,
                array.shape,
            )
    return table


SST_TREES = {
    "train.txt": [
        "(3 (2 a) (4 (4 great) (2 film)))",
        "(1 (1 (0 awful) (2 plot)) (2 .))",
        "(2 (2 just) (2 a) (2 movie))",
        "(4 (3 (3 fine) (2 acting)) (4 superb))",
        "(0 (0 terrible) (1 (2 the) (1 ending)))",
    ],
    "dev.txt": ["(3 (2 a) (3 good) (2 film))", "(1 (1 bad) (2 film))", "(2 (2 a) (2 film))"],
    "test.txt": ["(4 (4 great) (2 plot))", "(0 (0 awful) (2 film))"],
}


def write_sst(root: Path) -> dict[str, list[int]]:
    """sst/trees/*.txt; returns the root-label counts per split."""
    folder = root / "sst" / "trees"
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, lines in SST_TREES.items():
        (folder / name).write_text("".join(line + "\n" for line in lines))
        split = {"train.txt": "train", "dev.txt": "val", "test.txt": "test"}[name]
        counts[split] = [sum(int(ln[1]) == k for ln in lines) for k in range(5)]
    return counts


def write_imdb(root: Path, per_folder: int = 6) -> None:
    """aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt."""
    words = {
        "pos": "a wonderful , moving film<br /><br />loved it",
        "neg": "a dull , bad film . hated it",
    }
    for split in ("train", "test"):
        for polarity, rating in (("pos", 9), ("neg", 2)):
            folder = root / "aclImdb" / split / polarity
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_folder):
                text = f"{words[polarity]} number {i} " + "filler " * i
                (folder / f"{i}_{rating}.txt").write_text(text)


# a tiny word-level PTB run with variable-length BPTT windows (Merity et al. 2017)
TINY_VARIABLE_PTB = {
    "task.params.variable_bptt": True,
    "task.params.bptt": 8,
    "train.loss": "mean",
    "train.batch_size": 2,
    "train.eval_batch_size": 2,
    "train.max_epochs": 2,
    "model.hidden_size": 8,
    "model.embedding_size": 8,
    "model.num_layers": 1,
}
