"""Language modelling on a token stream with stateful truncated BPTT.

The training stream is cut into `batch_size` contiguous rows; each batch is the next window
of `bptt` steps of every row, and the hidden state is carried from one window to the next
(detached), starting from zeros at each epoch — as Zaremba et al. 2014 and pytorch/examples
train. Validation and test streams are cut into `eval_batch_size` rows the same way. The
metric is perplexity (or bits per character) over every predicted token.

With `variable_bptt` the training windows vary in length as in Merity et al. 2017, Sec. 4.1
(AWD-LSTM): each window is `bptt` long with probability 0.95, else `bptt / 2`, then jittered
by N(0, 5²) and kept at least 5 steps (awd-lstm-lm's `max(5, int(N(bptt, 5)))`); each batch
carries `lr_scale` = its length / bptt, by which the model rescales the lr of that step. The
lengths are drawn from (order seed, epoch), so a resumed run sees the windows an
uninterrupted one would. An epoch then has no length known in advance (the trainer counts
its batches as it goes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from regbench.tasks.base import SPLITS, InputSpec, Task, epoch_seed, loader
from regbench.tasks.cache import cached
from regbench.tasks.text import EOS, stream, vocabulary_in_order


class BpttWindows(Dataset):
    """Consecutive (rows, ≤ bptt) windows of a stream cut into `rows` contiguous rows: item i
    is the i-th window of `bptt` steps, item (start, n) the window of n steps from `start`
    (with `lr_scale` n / bptt; see VariableWindows)."""

    def __init__(self, ids: torch.Tensor, rows: int, bptt: int) -> None:
        length = len(ids) // rows
        self.data = ids[: length * rows].view(rows, length)
        self.bptt = bptt
        self.starts = list(range(0, length - 1, bptt))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(i, tuple):
            s, n = i
            return {**self._window(s, n), "lr_scale": n / self.bptt}
        s = self.starts[i]
        return self._window(s, min(self.bptt, self.data.shape[1] - 1 - s))

    def _window(self, s: int, n: int) -> dict[str, Any]:
        return {
            "x": self.data[:, s : s + n],
            "y": self.data[:, s + 1 : s + 1 + n],
            "stateful": True,
        }


FULL_PROBABILITY = 0.95  # Merity et al. 2017, Sec. 4.1: p of a full-length window
JITTER = 5.0  # the standard deviation of a window's length
SHORTEST = 5  # awd-lstm-lm's shortest window


class VariableWindows(Sampler[tuple[int, int]]):
    """The (start, length) windows of one epoch over a stream of `length` positions per row,
    lengths as in Merity et al. 2017, Sec. 4.1 (see the module docstring), drawn from
    (seed, epoch); Lightning calls `set_epoch` before every epoch. It has no `__len__`: the
    number of windows differs between epochs."""

    def __init__(self, length: int, bptt: int, seed: int) -> None:
        self.length, self.bptt, self.seed, self.epoch = length, bptt, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng(epoch_seed(self.seed, self.epoch))
        start, last = 0, self.length - 1
        while start < last:
            base = self.bptt if rng.random() < FULL_PROBABILITY else self.bptt / 2
            n = min(max(SHORTEST, int(rng.normal(base, JITTER))), last - start)
            yield start, n
            start += n


class LanguageModelTask(Task):
    """Base class: subclasses read the lines of each split (`read_lines`) and say where from."""

    external_data = True
    added_params = {"variable_bptt": False}  # fixed windows of `bptt` steps

    def read_lines(self) -> tuple[dict[str, list[list[str]]], str]:
        """Tokenized lines of train/val/test after the integrity checks, and a content key."""
        raise NotImplementedError

    def expected_tokens(self) -> dict[str, int] | None:
        """Known token counts per split (with one <eos> per line), checked after reading."""
        return None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        lines, key = self.read_lines()
        self._source_key = key
        corpus = cached(self.protocol.name, self.protocol.version, key, lambda: _corpus(lines))
        self.vocab: list[str] = corpus["vocab"]
        self.splits = {name: corpus[name] for name in SPLITS}
        self._check_counts()

    def _check_counts(self) -> None:
        expected = self.expected_tokens()
        actual = {name: len(ids) for name, ids in self.splits.items()}
        if expected and actual != expected:
            from regbench.tasks.sources import DataError

            raise DataError(
                f"{self.protocol.name}: token counts {actual} differ from the "
                f"published {expected}; the data is not the expected version."
            )

    def train_dataloader(self) -> DataLoader:
        if not self.params.get("variable_bptt", False):
            return self._windows("train", self.batch_size)
        windows = BpttWindows(self.splits["train"], self.batch_size, self.params["bptt"])
        sampler = VariableWindows(windows.data.shape[1], windows.bptt, self.order_seed)
        return loader(windows, None, sampler)

    def val_dataloader(self) -> DataLoader:
        return self._windows("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._windows("test", self.eval_batch_size)

    def _windows(self, split: str, rows: int) -> DataLoader:
        return loader(BpttWindows(self.splits[split], rows, self.params["bptt"]), None)

    def split_sizes(self) -> dict[str, int]:
        self.setup()
        return {name: len(ids) for name, ids in self.splits.items()}

    def step_iterations_per_epoch(self) -> int:
        return len(self.splits["train"]) // self.batch_size

    def input_spec(self) -> InputSpec:
        self.setup()
        return InputSpec(num_outputs=len(self.vocab), vocab_size=len(self.vocab))

    def source(self) -> dict[str, str]:
        return {"kind": "local" if self.data_dir else "hub", "key": self._source_key}


def _corpus(lines: dict[str, list[list[str]]]) -> dict[str, Any]:
    vocab = vocabulary_in_order([*lines["train"], [EOS]])
    index = {t: i for i, t in enumerate(vocab)}
    missing = {t for name in ("val", "test") for ln in lines[name] for t in ln if t not in index}
    if missing:
        from regbench.tasks.sources import DataError

        raise DataError(
            f"validation/test tokens missing from the training vocabulary: "
            f"{sorted(missing)[:5]}; the splits do not belong together."
        )
    return {"vocab": vocab, **{name: stream(lines[name], index) for name in SPLITS}}
