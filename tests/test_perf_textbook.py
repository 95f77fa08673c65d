"""The textbook models `make perf` times beside the fused-kernel variants
(bench/perf_textbook.py): built like the plain baseline, with the regularizer acting, at the
registry's default rates."""

from __future__ import annotations

import pytest
import torch

from regbench.models.variants import RECIPES, REGULARIZERS
from regbench.perf import SIZES, Size, _baseline, _inputs
from regbench.perf_textbook import has_textbook, textbook_step

FUSED = ["dropout", "embed_dropout", "locked_dropout", "weight_drop", "ar_tar", "awd"]
TINY = {
    "tokens": Size("tiny tokens", 3, 8, 5, 0, 17, "classify_each"),
    "features": Size("tiny features", 3, 8, 6, 2, 0, "classify_last"),
}
CPU = torch.device("cpu")


def test_only_regularized_fused_kernel_variants_have_a_textbook_model():
    assert [v for v in ["none", *FUSED, "zoneout", "recurrent_bn"] if has_textbook(v)] == FUSED
    assert set(SIZES) == {"ptb", "smnist"}


def _gradients(model: torch.nn.Module, step, x: torch.Tensor) -> list[torch.Tensor]:
    step(x)
    return [p.grad.clone() for p in model.parameters()]


CASES = [(v, "tokens") for v in FUSED]
CASES += [
    (v, "features")
    for v in FUSED
    if not any(REGULARIZERS[k].needs_tokens for k in RECIPES.get(v, (v,)))
]


@pytest.mark.parametrize(("variant", "inputs"), CASES)
def test_the_textbook_regularizer_acts_and_at_rate_zero_is_the_baseline(
    variant, inputs, monkeypatch
):
    size = TINY[inputs]
    x = _inputs(size, CPU)
    base = _gradients(*_baseline(size, CPU), x)
    torch.manual_seed(1)
    regularized = _gradients(*textbook_step(size, variant, CPU), x)
    assert len(regularized) == len(base)
    assert all(torch.isfinite(g).all() for g in regularized)
    assert any(not torch.equal(g, b) for g, b in zip(regularized, base, strict=True))
    for key, cls in REGULARIZERS.items():
        zero = {k: (0.0 if isinstance(v, float) else v) for k, v in cls.defaults.items()}
        monkeypatch.setattr(REGULARIZERS[key], "defaults", zero)
    plain = _gradients(*textbook_step(size, variant, CPU), x)
    assert all(torch.equal(g, b) for g, b in zip(plain, base, strict=True))
