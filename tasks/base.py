"""A task is a LightningDataModule with a declared, versioned protocol.

The protocol states what is measured (metric and direction), how the data is split, and the
default hyperparameters with the published reference they come from. Everything a run depends
on — the protocol version, the task parameters and the data seed — is part of the job's identity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

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


def _identity(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return batch


class Task(L.LightningDataModule):
    """Base class: subclasses set `protocol` and implement `build_splits` and `input_spec`."""

    protocol: ClassVar[Protocol]
    external_data: ClassVar[bool] = False  # read from files or the hub, not generated

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
        """Check and cache the data before any run starts (a no-op for generated data)."""
        if self.external_data:
            self.setup()
            self.splits = {}

    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            built = self.build_splits()
            self.splits = {name: TensorSplit(built[name]) for name in SPLITS}

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.order_seed)
        return self._loader("train", self.batch_size, shuffle=True, generator=generator)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def _loader(self, split: str, batch_size: int, **kwargs: Any) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=batch_size, collate_fn=_identity, **kwargs)

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {name: len(split) for name, split in self.splits.items()}

    def step_iterations_per_epoch(self) -> int:
        """Time steps × training batches in one epoch (the recurrence's sequential work)."""
        train = self.splits["train"]
        return train.tensors["x"].shape[1] * -(-len(train) // self.batch_size)
