"""Sequential and permuted MNIST: 28×28 digits read one pixel per step (784 steps).

Pixels are scaled to [0, 1] and normalized with (0.1307, 0.3081); classification from the
last step. pMNIST applies one fixed permutation of the 784 positions, drawn from `perm_seed`
(recorded in every run's config, unlike the unseeded permutation of the TCN script). A
validation split of `n_val` images is carved from the 60,000 training images with
`split_seed`; the 10,000 test images are the test split. Default protocol: Bai et al. 2018's
LSTM baseline (1×130, RMSprop 1e-3, clip 1, batch 64, about 10 epochs, forget-gate bias 1 for
sMNIST and 10 for pMNIST; test accuracy 87.2 / 85.7).

Local files (`--data-dir`): `mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`, checked
by the SHA-256 of their decompressed content and their IDX headers. Hub: `ylecun/mnist`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import torch

from regbench.tasks.base import InputSpec, Protocol, Task
from regbench.tasks.cache import cached
from regbench.tasks.registry import register_task
from regbench.tasks.sources import DataError, check_digest, gunzip, hub_key, load_hub, read_bytes

MEAN, STD = 0.1307, 0.3081
IDX = {  # name: (sha256 of the decompressed file, magic, dims)
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        2051,
        (60000, 28, 28),
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        2049,
        (60000,),
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        2051,
        (10000, 28, 28),
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        2049,
        (10000,),
    ),
}
HINT = "the four MNIST IDX files (train-images-idx3-ubyte.gz, …)"


def read_idx(path: Any, expected: tuple[str, int, tuple[int, ...]]) -> np.ndarray:
    """One IDX file: gunzip, check hash and header, return the uint8 array."""
    data = gunzip(path, read_bytes(path, "MNIST file", f"expected {HINT} in {path.parent}."))
    digest, magic, dims = expected
    found = struct.unpack(">I", data[:4])[0] if len(data) >= 4 else None
    if found != magic:
        raise DataError(
            f"{path}: IDX magic {found} is not {magic}; not an MNIST "
            f"{'image' if magic == 2051 else 'label'} file."
        )
    check_digest(path, data, digest)
    offset = 4 + 4 * len(dims)
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def load_local(folder: Any) -> dict[str, np.ndarray]:
    base = folder / "mnist"
    arrays = {name: read_idx(base / f"{name}.gz", ref) for name, ref in IDX.items()}
    return {
        "train_x": arrays["train-images-idx3-ubyte"],
        "train_y": arrays["train-labels-idx1-ubyte"],
        "test_x": arrays["t10k-images-idx3-ubyte"],
        "test_y": arrays["t10k-labels-idx1-ubyte"],
    }


def load_from_hub(hub: Any) -> dict[str, np.ndarray]:
    data = hub.with_format("numpy")
    out = {}
    for split, name in (("train", "train"), ("test", "test")):
        out[f"{split}_x"] = np.stack(data[name]["image"]).astype(np.uint8)
        out[f"{split}_y"] = np.asarray(data[name]["label"], dtype=np.uint8)
    return out


class SequentialMnist(Task):
    """Base of smnist and pmnist; `permuted` decides the pixel order."""

    external_data = True

    permuted = False

    @classmethod
    def check_params(cls, params: Mapping[str, Any]) -> str | None:
        if not 0 < params["n_val"] < 60_000:
            return f"n_val must lie in (0, 60000), got {params['n_val']}"
        return None

    def _raw(self) -> dict[str, Any]:
        """Local files are read and checked every time (about a second); hub images are
        decoded once and cached."""
        if self.data_dir is None:
            hub = load_hub("mnist", "ylecun/mnist", HINT)
            return cached("mnist", 1, hub_key(hub), partial(load_from_hub, hub))
        return load_local(self.data_dir)

    def build_splits(self) -> dict[str, dict[str, torch.Tensor]]:
        raw = self._raw()
        order = np.arange(784)
        if self.permuted:
            order = np.random.default_rng(self.params["perm_seed"]).permutation(784)
        rng = np.random.default_rng(self.params["split_seed"])
        shuffled = rng.permutation(len(raw["train_y"]))
        n_val = self.params["n_val"]
        parts = {
            "train": ("train", shuffled[n_val:]),
            "val": ("train", shuffled[:n_val]),
            "test": ("test", None),
        }
        return {name: self._tensors(raw, src, idx, order) for name, (src, idx) in parts.items()}

    @staticmethod
    def _tensors(raw: dict, source: str, index: Any, order: np.ndarray) -> dict[str, torch.Tensor]:
        images = np.asarray(raw[f"{source}_x"]).reshape(-1, 784)
        labels = np.asarray(raw[f"{source}_y"])
        if index is not None:
            images, labels = images[index], labels[index]
        pixels = (images[:, order].astype(np.float32) / 255.0 - MEAN) / STD
        return {
            "x": torch.from_numpy(pixels[..., None]),
            "y": torch.from_numpy(labels.astype(np.int64)),
        }

    def input_spec(self) -> InputSpec:
        return InputSpec(num_outputs=10, features=1)

    def references(self) -> dict[str, float]:
        return {"chance": 0.1}

    def source(self) -> dict[str, str]:
        return {"kind": "local" if self.data_dir else "hub"}


def _protocol(name: str, forget_bias: float, published: str, params: dict) -> Protocol:
    return Protocol(
        name=name,
        version=1,
        metric="accuracy",
        kind="classify_last",
        splits="55,000 / 5,000 / 10,000 images (validation carved from train by split_seed)",
        reference=f"Bai, Kolter & Koltun 2018 (TCN), Tables 1 and 3: LSTM 1×130, test accuracy "
        f"{published}",
        params={"n_val": 5_000, "split_seed": 0, **params},
        model={"hidden_size": 130, "num_layers": 1, "forget_bias": forget_bias},
        train={
            "optimizer": "rmsprop",
            "lr": 1e-3,
            "batch_size": 64,
            "eval_batch_size": 1000,
            "max_epochs": 10,
            "clip": 1.0,
        },
        regularizers={
            "dropout": {"p_input": 0.0},
            "variational": {"p_input": 0.0},
            "locked_dropout": {"p_input": 0.0},
            "zoneout": {"z_c": 0.15, "z_h": 0.15},
        },
    )


@register_task
class Smnist(SequentialMnist):
    protocol = _protocol("smnist", 1.0, "87.2", {})


@register_task
class Pmnist(SequentialMnist):
    permuted = True
    protocol = _protocol("pmnist", 10.0, "85.7", {"perm_seed": 0})
