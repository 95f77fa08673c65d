"""Binary sentiment on the Stanford Sentiment Treebank (SST-2), sentence level.

Trees with a neutral root are dropped; roots 0–1 are negative, 3–4 positive: 6,920 / 872 /
1,821 sentences. Default protocol: Tai et al. 2015's sequential LSTM (1 layer, memory 168,
AdaGrad lr 0.05, L2 1e-4, batch 25, 10 epochs, best dev model; test accuracy 84.9 ± 0.6), in
which every update sees each sentence plus `train_subtrees` = 4 of its labelled non-neutral
phrases, drawn at random (with the order seed). Deviation, stated in every table: embeddings
are learned from random initialization (300-d), not GloVe 840B, and tokens are lowercased.
Vocabulary from the training sentences; unknown words map to <unk>.

Local files (`--data-dir`): `sst/trees/{train,dev,test}.txt` (trainDevTestTrees_PTB), checked
by their tree counts and label distributions. Hub: `SetFit/sst2` (sentences only, so
`train_subtrees` must be 0 there).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from regbench.tasks.base import (
    SPLITS,
    EpochShuffle,
    InputSpec,
    Protocol,
    Task,
    TensorSplit,
    epoch_seed,
    loader,
)
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

FILES = {"train": "train.txt", "val": "dev.txt", "test": "test.txt"}
ROOT_COUNTS = {  # labels 0–4 of the roots, per file
    "train": [1092, 2218, 1624, 2322, 1288],
    "val": [139, 289, 229, 279, 165],
    "test": [279, 633, 389, 510, 399],
}
HINT = "expected sst/trees/{train,dev,test}.txt (trainDevTestTrees_PTB)."
TOKEN = re.compile(r"\(|\)|[^\s()]+")
Node = tuple[int, int, int]  # label, start, end (leaf positions)


def parse_tree(line: str, where: str) -> tuple[list[str], list[Node]]:
    """Leaves and labelled spans of one PTB-style tree, root last."""
    words: list[str] = []
    nodes: list[Node] = []
    stack: list[tuple[int, int]] = []
    tokens = TOKEN.findall(line)
    i = 0
    try:
        while i < len(tokens):
            if tokens[i] == "(":
                stack.append((int(tokens[i + 1]), len(words)))
                i += 2
            elif tokens[i] == ")":
                label, start = stack.pop()
                nodes.append((label, start, len(words)))
                i += 1
            else:
                words.append(tokens[i].lower())
                i += 1
    except (IndexError, ValueError):
        raise DataError(f"{where}: not a labelled tree.") from None
    if stack or not nodes or nodes[-1][1:] != (0, len(words)) or not 0 <= nodes[-1][0] <= 4:
        raise DataError(f"{where}: not a complete labelled tree (unbalanced parentheses?).")
    return words, nodes


def read_trees(folder: Path) -> dict[str, list[tuple[list[str], list[Node]]]]:
    trees = {}
    for split, name in FILES.items():
        path = folder / "sst" / "trees" / name
        lines = read_text(path, f"SST {split} trees", HINT).splitlines()
        parsed = [parse_tree(ln, f"{path}:{i + 1}") for i, ln in enumerate(lines) if ln.strip()]
        counts = [sum(n[-1][0] == k for _, n in parsed) for k in range(5)]
        if counts != ROOT_COUNTS[split]:
            raise DataError(
                f"{path}: root labels {counts}, expected {ROOT_COUNTS[split]} "
                f"({sum(ROOT_COUNTS[split]):,} trees); truncated or another version."
            )
        trees[split] = parsed
    return trees


def binary(label: int) -> int | None:
    return None if label == 2 else int(label >= 3)


def build_from_trees(trees: Mapping[str, list]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for split, parsed in trees.items():
        kept = [(w, n) for w, n in parsed if binary(n[-1][0]) is not None]
        data[split] = {
            "words": [w for w, _ in kept],
            "labels": [binary(n[-1][0]) for _, n in kept],
            "phrases": [[(binary(lab), s, e) for lab, s, e in n[:-1] if lab != 2] for _, n in kept],
        }
    return data


def _from_folder(folder: Path) -> dict[str, Any]:
    return build_from_trees(read_trees(folder))


def build_from_hub(hub: Any) -> dict[str, Any]:
    names = {"train": "train", "val": "validation", "test": "test"}
    return {
        split: {
            "words": [t.lower().split() for t in hub[h]["text"]],
            "labels": list(hub[h]["label"]),
            "phrases": None,
        }
        for split, h in names.items()
    }


class SentencesWithPhrases(Dataset):
    """Training sentences; each batch adds `k` random labelled phrases per sentence."""

    def __init__(
        self, split: TensorSplit, phrases: list[list[tuple[int, int, int]]], k: int, seed: int
    ) -> None:
        self.split, self.phrases, self.k, self.seed = split, phrases, k, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Phrases are drawn from a generator of (seed, epoch): resumable like the order."""
        self.generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch) + 1)

    def __len__(self) -> int:
        return len(self.split)

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        rows = [self.split.tensors["x"][i, : self.split.tensors["lengths"][i]] for i in indices]
        labels = [int(self.split.tensors["y"][i]) for i in indices]
        for i, row in zip(indices, list(rows), strict=True):
            pool = self.phrases[i]
            if not pool or not self.k:
                continue
            for j in torch.randint(len(pool), (self.k,), generator=self.generator).tolist():
                label, start, end = pool[j]
                rows.append(row[start:end])
                labels.append(label)
        lengths = torch.tensor([len(r) for r in rows])
        x = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
        return {"x": x, "lengths": lengths, "y": torch.tensor(labels)}


@register_task
class Sst2(Task):
    external_data = True
    protocol = Protocol(
        name="sst2",
        version=1,
        metric="accuracy",
        kind="classify_last",
        tokens=True,
        splits="6,920 / 872 / 1,821 sentences (neutral dropped), plus labelled phrases in training",
        reference="Tai et al. 2015, Table 2: LSTM (memory 168) test accuracy 84.9 (0.6); here "
        "with random 300-d embeddings, not GloVe",
        params={"train_subtrees": 4},
        model={"hidden_size": 168, "num_layers": 1, "embedding_size": 300},
        train={
            "optimizer": "adagrad",
            "lr": 0.05,
            "weight_decay": 1e-4,
            "batch_size": 25,
            "eval_batch_size": 256,
            "max_epochs": 10,
        },
        regularizers={"dropout": {"p_input": 0.0, "p_output": 0.5}},
        # AdaGrad's weight decay drives unused word vectors into subnormal floats
        execution={"flush_denormal": True},
    )

    def _data(self) -> tuple[dict[str, Any], str]:
        if self.data_dir is None:
            if self.params["train_subtrees"]:
                raise DataError(
                    "sst2: train_subtrees > 0 needs the treebank files (sst/trees); "
                    "set --data-dir, or task.params.train_subtrees=0 for the hub."
                )
            hub = load_hub("sst2", "SetFit/sst2", "sst/trees/{train,dev,test}.txt")
            key = hub_key(hub)
            return cached("sst2", self.protocol.version, key, partial(build_from_hub, hub)), key
        folder = self.data_dir
        key = fingerprint(
            digest(read_bytes(folder / "sst" / "trees" / name, f"SST {split} trees", HINT))
            for split, name in FILES.items()
        )
        return cached("sst2", self.protocol.version, key, partial(_from_folder, folder)), key

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        data, self._key = self._data()
        self.vocab = vocabulary_by_count(data["train"]["words"], 0)
        index = {t: i for i, t in enumerate(self.vocab)}
        self.splits = {
            s: TensorSplit(
                {**padded(data[s]["words"], index), "y": torch.tensor(data[s]["labels"])}
            )
            for s in SPLITS
        }
        self.phrases = data["train"]["phrases"]

    def train_dataloader(self) -> DataLoader:
        k = self.params["train_subtrees"]
        dataset = SentencesWithPhrases(self.splits["train"], self.phrases or [], k, self.order_seed)
        order = EpochShuffle(len(dataset), self.order_seed, dataset)
        return loader(dataset, self.batch_size, order)

    def input_spec(self) -> InputSpec:
        self.setup()
        return InputSpec(num_outputs=2, vocab_size=len(self.vocab))

    def references(self) -> dict[str, float]:
        self.setup()
        positive = self.splits["test"].tensors["y"].float().mean().item()
        return {"majority class": max(positive, 1 - positive)}

    def source(self) -> dict[str, str]:
        return {"kind": "local" if self.data_dir else "hub", "key": self._key}
