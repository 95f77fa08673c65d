"""The metrics a task protocol can declare, each with its direction and torchmetrics object."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torchmetrics import MeanMetric, MeanSquaredError, Metric
from torchmetrics.classification import MulticlassAccuracy

Direction = Literal["max", "min"]


class MeanNLL(MeanMetric):
    """Token-weighted mean negative log-likelihood, reported through a fixed transform."""

    def __init__(self, transform: str = "identity") -> None:
        super().__init__()
        self.transform = transform

    def compute(self) -> torch.Tensor:
        nll = super().compute()
        if self.transform == "exp":
            return torch.exp(nll)
        if self.transform == "bits":
            return nll / math.log(2.0)
        return nll


@dataclass(frozen=True)
class MetricDef:
    """How a metric is named, which way is better, and what it is computed from."""

    name: str
    direction: Direction
    description: str
    from_nll: bool  # True: updated with per-token NLL values; False: with predictions

    def make(self, num_classes: int) -> Metric:
        """A fresh torchmetrics object for one split."""
        if self.name == "accuracy":
            return MulticlassAccuracy(num_classes=num_classes, average="micro")
        if self.name == "mse":
            return MeanSquaredError()
        transform = {"perplexity": "exp", "bpc": "bits"}.get(self.name, "identity")
        return MeanNLL(transform)


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        MetricDef("accuracy", "max", "fraction of sequences classified correctly", False),
        MetricDef("mse", "min", "mean squared error of the regression target", False),
        MetricDef("cross_entropy", "min", "mean cross-entropy (nats) over all positions", True),
        MetricDef("perplexity", "min", "exp of the mean per-token NLL", True),
        MetricDef("bpc", "min", "mean per-character NLL in bits", True),
    )
}
