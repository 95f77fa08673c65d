"""Limited evaluation (train.limit_eval_batches, Lightning's limit_val/test_batches) reads a
seeded random subset of the split, not its first batches: SST-2's files are sorted by label,
so their first sentences are nearly all of one class."""

from __future__ import annotations

import lightning as L
import pytest
import torch

import fixtures
from helpers import task_instance
from regbench.tasks import sst

PER_LABEL = 48  # sentences of each label per evaluation split, positives first
EVAL_BATCH = 16  # helpers.task_instance's eval_batch_size
LIMIT = 2
EVAL = ("val", "test")


def sorted_trees() -> list[str]:
    """Positive trees, then negative ones; within a label, sentence i has i + 1 words, so that
    (label, length) names a sentence."""
    positive = [f"(4 (4 great){' (2 film)' * i})" for i in range(PER_LABEL)]
    negative = [f"(0 (0 awful){' (2 film)' * i})" for i in range(PER_LABEL)]
    return positive + negative


@pytest.fixture
def sst_sorted(tmp_path, monkeypatch):
    """SST files whose dev and test trees are sorted by label, as the real ones are."""
    counts = fixtures.write_sst(tmp_path) | {s: [PER_LABEL, 0, 0, 0, PER_LABEL] for s in EVAL}
    for name in ("dev.txt", "test.txt"):
        (tmp_path / "sst" / "trees" / name).write_text("".join(t + "\n" for t in sorted_trees()))
    monkeypatch.setattr(sst, "ROOT_COUNTS", counts)
    return tmp_path


class Seen(L.LightningModule):
    """Keeps the batches Lightning evaluates."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[str, list[dict[str, torch.Tensor]]] = {"val": [], "test": []}

    def validation_step(self, batch: dict[str, torch.Tensor], index: int) -> None:
        self.seen["val"].append(batch)

    def test_step(self, batch: dict[str, torch.Tensor], index: int) -> None:
        self.seen["test"].append(batch)


def evaluated(root, limit: int | None, data_seed: int = 0) -> dict[str, list[tuple[int, int]]]:
    """(label, length) of each sentence a Trainer limited as bench/run/trainer.py does evaluates."""
    task = task_instance("sst2", root, data_seed=data_seed)
    module = Seen()
    trainer = L.Trainer(
        accelerator="cpu",
        limit_val_batches=limit,
        limit_test_batches=limit,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.validate(module, datamodule=task, verbose=False)
    trainer.test(module, datamodule=task, verbose=False)
    return {
        split: [
            p for b in batches for p in zip(b["y"].tolist(), b["lengths"].tolist(), strict=True)
        ]
        for split, batches in module.seen.items()
    }


def test_limited_evaluation_of_a_label_sorted_split_sees_both_labels(sst_sorted):
    for split, seen in evaluated(sst_sorted, LIMIT).items():
        assert len(seen) == len(set(seen)) == LIMIT * EVAL_BATCH, split
        # the first 2 batches hold 32 positives; a random 32 of 48 + 48 about 16 of each
        assert 0.25 < sum(y for y, _ in seen) / len(seen) < 0.75, split


def test_the_subset_is_fixed_by_the_data_seed(sst_sorted):
    first, again = evaluated(sst_sorted, LIMIT), evaluated(sst_sorted, LIMIT)
    other = evaluated(sst_sorted, LIMIT, data_seed=1)
    assert first == again
    for split in EVAL:
        assert first[split] != other[split], split
    assert first["val"] != first["test"]  # a draw of its own per split


def test_unlimited_evaluation_reads_every_item_in_file_order(sst_sorted):
    in_order = [(1, i + 1) for i in range(PER_LABEL)] + [(0, i + 1) for i in range(PER_LABEL)]
    for split, seen in evaluated(sst_sorted, None).items():
        assert seen == in_order, split
