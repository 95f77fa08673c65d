"""A task is a LightningDataModule with a declared, versioned protocol.

The protocol states what is measured (metric and direction), how the data is split, and the
default hyperparameters with the published reference they come from. Everything a run depends
on — the protocol version, the task parameters and the data seed — is part of the job's identity.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from regbench.tasks.metrics import METRICS, MetricDef

OutputKind = Literal["classify_last", "classify_each", "regress_last"]
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Protocol:
    """What a task measures and the defaults it is run with."""

    name: str
    version: int
    metric: str
    kind: OutputKind
    splits: str
    reference: str
    params: Mapping[str, Any]
    model: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    regularizers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    execution: Mapping[str, Any] = field(default_factory=dict)  # threads, device, step mode
    tokens: bool = False  # inputs are token ids (an embedding), not features

    @property
    def metric_def(self) -> MetricDef:
        return METRICS[self.metric]

    @property
    def direction(self) -> str:
        return self.metric_def.direction


@dataclass(frozen=True)
class InputSpec:
    """The shapes a model needs: continuous features or a token vocabulary, and outputs."""

    num_outputs: int
    features: int = 0
    vocab_size: int = 0

    @property
    def tokens(self) -> bool:
        return self.vocab_size > 0


class TensorSplit(Dataset):
    """A split held as equally long tensors; batches are gathered in one indexing call."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        sizes = {len(t) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(
                f"tensors of unequal length: { {k: len(t) for k, t in tensors.items()} }"
            )
        self.tensors = dict(tensors)
        self.size = sizes.pop()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: t[index] for k, t in self.tensors.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = torch.as_tensor(indices)
        return {k: t[idx] for k, t in self.tensors.items()}


def identity(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


def epoch_seed(seed: int, epoch: int) -> int:
    """A well-mixed seed for one epoch of one run."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class EpochShuffle(Sampler[int]):
    """A random order of `size` items that depends only on (seed, epoch), so a run resumed at
    an epoch boundary sees the batches an uninterrupted run would. Lightning calls
    `set_epoch` before every epoch; a dataset with its own per-epoch randomness is told too."""

    def __init__(self, size: int, seed: int, dataset: Dataset | None = None) -> None:
        self.size, self.seed, self.dataset, self.epoch = size, seed, dataset, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


EVAL_STREAM = 0xE7A1  # keeps the evaluation subsets' draws apart from epoch_seed's


def evaluation_subset(size: int, n: int, seed: int, split: str) -> list[int]:
    """`n` of `size` indices, drawn without replacement from (seed, split), in ascending order."""
    rng = np.random.default_rng([seed, EVAL_STREAM, SPLITS.index(split)])
    return sorted(rng.choice(size, n, replace=False).tolist())


def loader(
    dataset: Dataset,
    batch_size: int | None,
    sampler: Sampler | None = None,
    collate_fn: Any = identity,
) -> DataLoader:
    """A DataLoader that never draws from the global RNG (which belongs to the masks)."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(0),
    )


class Task(L.LightningDataModule):
    """Base class: subclasses set `protocol` and implement `build_splits` and `input_spec`."""

    protocol: ClassVar[Protocol]
    external_data: ClassVar[bool] = False  # read from files or the hub, not generated
    # Parameters added after results existed, each at the neutral value that computes what
    # the task computed before it (config.py leaves them out of a resolved config there).
    added_params: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        params: Mapping[str, Any],
        data_seed: int,
        order_seed: int,
        batch_size: int,
        eval_batch_size: int,
        data_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.params = dict(params)
        self.data_dir = data_dir
        self.data_seed = data_seed
        self.order_seed = order_seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.splits: dict[str, TensorSplit] = {}

    # -- to implement -------------------------------------------------------------------
    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> str | None:
        """A one-line problem with these task parameters, or None; checked before any run."""
        return None

    def build_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        """Tensors for 'train', 'val' and 'test': 'x' (B,T,F) float or (B,T) long, and 'y'."""
        raise NotImplementedError

    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    def references(self) -> dict[str, float]:
        """Reference values of the metric on the test split (chance, trivial predictor, …)."""
        return {}

    def source(self) -> dict[str, str]:
        """Where the data came from (local files or hub) and its content key, for provenance."""
        return {"kind": "generated"}

    # -- LightningDataModule ----------------------------------------------------------------
    def prepare_data(self) -> None:
        """Check and cache the data before any run starts (a no-op for generated data): the
        launcher calls it once per task, building the splits and dropping them. In a run,
        where the splits are built already (before the model: `input_spec`), Lightning's calls
        before fit and test change nothing."""
        if self.external_data and not self.splits:
            self.setup()
            self.splits = {}

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            built = self.build_splits()
            self.splits = {name: TensorSplit(built[name]) for name in SPLITS}

    def train_dataloader(self) -> DataLoader:
        train = self.splits["train"]
        return loader(train, self.batch_size, EpochShuffle(len(train), self.order_seed))

    def val_dataloader(self) -> DataLoader:
        return self.evaluation_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.evaluation_loader("test")

    # Language-model tasks (language.py) evaluate their own way: consecutive windows of a stream
    # cut into `eval_batch_size` rows, the hidden state carried from one to the next, so a
    # shuffled subset would not do. Their first n windows are a fair sample: every row's first
    # n·bptt tokens, rows that start evenly spread over the whole split, read from a zero state
    # as a full evaluation reads them.
    def evaluation_loader(self, split: str) -> DataLoader:
        """All of `split` in file order; where the trainer evaluates at most n batches
        (train.limit_eval_batches), n batches' worth of items drawn from the data seed instead:
        files may be sorted (SST-2's by label), so their first batches are no sample."""
        data: Dataset = self.splits[split]
        n = self.evaluation_limit(split) * self.eval_batch_size
        if 0 < n < len(data):
            data = Subset(data, evaluation_subset(len(data), n, self.data_seed, split))
        return loader(data, self.eval_batch_size)

    def evaluation_limit(self, split: str) -> int:
        """The trainer's limit on evaluation batches of `split` (0: none, or no trainer)."""
        limit = getattr(self.trainer, f"limit_{split}_batches", None)
        return limit if isinstance(limit, int) else 0

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {name: len(split) for name, split in self.splits.items()}

    def step_iterations_per_epoch(self) -> int:
        """Time steps × training batches in one epoch (the recurrence's sequential work)."""
        train = self.splits["train"]
        return train.tensors["x"].shape[1] * -(-len(train) // self.batch_size)
