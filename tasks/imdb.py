"""IMDB movie-review sentiment (Maas et al. 2011): 25,000 training and 25,000 test reviews.

Reviews are lowercased, `<br />` removed and split into words and punctuation; the
`vocab_size` − 2 most frequent training words are kept (others map to <unk>) and each review
is cut to its last `max_len` tokens, as Keras' `pad_sequences` does. A validation split of
`n_val` reviews is carved from the training set with `split_seed`. Default protocol: the
Keras `imdb_bidirectional_lstm` example (20k vocabulary, 100 tokens, 128-d embedding, Adam,
batch 32, 4 epochs; reported ≈ 81.5% for a bidirectional LSTM 64) with a one-directional
LSTM 128 — regbench's documented IMDB baseline, not a reproduction of that number.

Local files (`--data-dir`): the original `aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`
folders (12,500 reviews each, ratings 7–10 in pos and 1–4 in neg). Hub: `stanfordnlp/imdb`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from regbench.tasks.base import InputSpec, Protocol, Task
from regbench.tasks.cache import cached
from regbench.tasks.registry import register_task
from regbench.tasks.sources import (
    DataError,
    digest,
    fingerprint,
    hub_key,
    load_hub,
    read_bytes,
    read_text,
)
from regbench.tasks.text import padded, vocabulary_by_count

WORDS = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
NAME = re.compile(r"^(\d+)_(\d+)\.txt$")
RATINGS = {"pos": range(7, 11), "neg": range(1, 5)}
PER_FOLDER = 12_500


def tokenize(text: str) -> list[str]:
    return WORDS.findall(text.lower().replace("<br />", " "))


def read_folder(root: Path, split: str, require_full: bool = True) -> tuple[list[str], list[int]]:
    """Texts and labels (1 = pos) of aclImdb/<split>, checking names, ratings and counts."""
    texts, labels = [], []
    for label, polarity in ((0, "neg"), (1, "pos")):
        folder = root / "aclImdb" / split / polarity
        if not folder.is_dir():
            raise DataError(f"{folder}: missing; expected the original aclImdb folders.")
        files = sorted(folder.glob("*.txt"))
        for path in files:
            match = NAME.match(path.name)
            if not match or int(match[2]) not in RATINGS[polarity]:
                raise DataError(
                    f"{path}: not an aclImdb {polarity} review (<id>_<rating>.txt "
                    f"with rating {RATINGS[polarity].start}–{RATINGS[polarity][-1]})."
                )
            texts.append(read_text(path, f"aclImdb {polarity} review", "replace the folder."))
            labels.append(label)
        if require_full and len(files) != PER_FOLDER:
            raise DataError(
                f"{folder}: {len(files):,} reviews, expected {PER_FOLDER:,}; the "
                "folder is incomplete."
            )
    return texts, labels


def content_key(root: Path) -> str:
    """A key of every review file's name and content."""
    files = sorted((root / "aclImdb").glob("*/*/*.txt"))
    return fingerprint(
        f"{p.relative_to(root)}:{digest(read_bytes(p, 'aclImdb review', 'replace the folder.'))}"
        for p in files
    )


def read_local(root: Path) -> dict[str, tuple[list[str], list[int]]]:
    return {split: read_folder(root, split) for split in ("train", "test")}


def read_hub(hub: Any) -> dict[str, tuple[list[str], list[int]]]:
    return {
        split: (list(hub[split]["text"]), list(hub[split]["label"])) for split in ("train", "test")
    }


def tokenized(read: Any) -> dict[str, Any]:
    return {
        split: ([tokenize(t) for t in texts], labels) for split, (texts, labels) in read().items()
    }


@register_task
class Imdb(Task):
    external_data = True
    protocol = Protocol(
        name="imdb",
        version=1,
        metric="accuracy",
        kind="classify_last",
        tokens=True,
        splits="22,500 / 2,500 / 25,000 reviews (validation carved from train by split_seed)",
        reference="regbench baseline after the Keras imdb_bidirectional_lstm example "
        "(≈ 81.5% with a bidirectional LSTM 64); Dai & Le 2015's tuned LSTM reaches 86.5%",
        params={"vocab_size": 20_000, "max_len": 100, "n_val": 2_500, "split_seed": 0},
        model={"hidden_size": 128, "num_layers": 1, "embedding_size": 128},
        train={
            "optimizer": "adam",
            "lr": 1e-3,
            "batch_size": 32,
            "eval_batch_size": 256,
            "max_epochs": 4,
        },
        regularizers={"dropout": {"p_input": 0.0, "p_output": 0.5}},
    )

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> str | None:
        if params["vocab_size"] < 3 or params["max_len"] < 1:
            return "vocab_size must be at least 3 and max_len at least 1"
        if not 0 < params["n_val"] < 25_000:
            return f"n_val must lie in (0, 25000), got {params['n_val']}"
        return None

    def build_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        if self.data_dir is None:
            hub = load_hub("imdb", "stanfordnlp/imdb", "aclImdb/{train,test}/{pos,neg}/")
            key, read = hub_key(hub), partial(read_hub, hub)
        else:
            # keyed by every review's name and content: a changed or damaged file rebuilds
            key, read = content_key(self.data_dir), partial(read_local, self.data_dir)
        data = cached("imdb", self.protocol.version, key, partial(tokenized, read))
        train_tokens, train_labels = data["train"]
        order = np.random.default_rng(self.params["split_seed"]).permutation(len(train_labels))
        n_val = self.params["n_val"]
        parts = {"train": order[n_val:], "val": order[:n_val]}
        vocab = vocabulary_by_count(
            [train_tokens[i] for i in parts["train"]], self.params["vocab_size"]
        )
        self.vocab = vocab
        index = {t: i for i, t in enumerate(vocab)}
        splits = {
            name: self._encode(
                [train_tokens[i] for i in idx], [train_labels[i] for i in idx], index
            )
            for name, idx in parts.items()
        }
        splits["test"] = self._encode(*data["test"], index)
        return splits

    def _encode(self, docs: list[list[str]], labels: list[int], index: dict[str, int]) -> dict:
        cut = [d[-self.params["max_len"] :] for d in docs]
        return {**padded(cut, index), "y": torch.tensor(labels)}

    def input_spec(self) -> InputSpec:
        self.setup()
        return InputSpec(num_outputs=2, vocab_size=len(self.vocab))

    def references(self) -> dict[str, float]:
        return {"majority class": 0.5}

    def source(self) -> dict[str, str]:
        return {"kind": "local" if self.data_dir else "hub"}
