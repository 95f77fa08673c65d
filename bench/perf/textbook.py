"""The textbook implementation of each fused-kernel variant, which `make perf` times beside
regbench's in the same process.

Each is bench/perf/measure.py's plain model (embedding, `nn.LSTM`, linear head) with the regularizer
written the common way, from its paper's formula, at regbench's default rates:

- Zaremba et al. 2014 dropout: `F.dropout` on the layer's input and on the output;
- Gal & Ghahramani 2016 / Merity et al. 2017 locked dropout: a Bernoulli (1, B, F) mask drawn
  with `bernoulli_`, scaled by 1/(1 − p), broadcast over time;
- embedding dropout (Merity et al. 2017, Sec. 4.3): a Bernoulli (V, 1) row mask times the
  embedding matrix, then the lookup in the masked matrix;
- weight-drop (Merity et al. 2017, Sec. 2): `F.dropout` on W_hh, the LSTM run with it through
  `torch.func.functional_call`;
- AR/TAR (Merity et al. 2017, Sec. 4.6): α·mean(d²) + β·mean((h_{t+1} − h_t)²) composed from
  elementwise ops.

Its ratio against the plain model is what the regularizer costs written that way. Where
regbench's row is at least as fast, its cost is the regularizer's, not regbench's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regbench.models.variants import RECIPES, REGULARIZERS

SITE_DROPOUTS = ("dropout", "locked_dropout")  # the regularizers acting at the sites
WRITTEN = {*SITE_DROPOUTS, "embed_dropout", "weight_drop", "ar_tar"}  # those written here


def has_textbook(variant: str) -> bool:
    """Whether `variant` is regularized and every regularizer of it has a textbook form here
    (all of them run on the fused kernel)."""
    keys = RECIPES.get(variant, (variant,))
    return bool(keys) and set(keys) <= WRITTEN


def plain_model(size, device: torch.device) -> nn.ModuleList:
    """The plain model at `size` (a perf Size), seeded so that every build is the same: the
    embedding (an identity for feature inputs), `nn.LSTM` and a 10-way head. `make perf`'s
    baseline, and the textbook models' starting point."""
    torch.manual_seed(0)
    embed = nn.Embedding(size.vocab, size.hidden) if size.vocab else nn.Identity()
    rnn = nn.LSTM(size.features or size.hidden, size.hidden)
    head = nn.Linear(size.hidden, 10)
    return nn.ModuleList([embed, rnn, head]).to(device)


def textbook_step(
    size, variant: str, device: torch.device
) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """The textbook model of `variant` at `size` (a perf Size), the plain model's modules,
    and one forward+backward of it on (B, T) tokens or (B, T, F) features, its loss
    as the baseline's (plus the AR/TAR penalty where the variant has one), which it returns
    detached."""
    if not has_textbook(variant):
        raise ValueError(f"no textbook model of {variant!r}; written here: {sorted(WRITTEN)}")
    keys = RECIPES.get(variant, (variant,))
    rates = {k: dict(REGULARIZERS[k].defaults) for k in keys}
    model = plain_model(size, device)
    embed, rnn, head = model
    every_step = size.kind == "classify_each" or "ar_tar" in rates

    def step(x: Tensor) -> Tensor:
        model.zero_grad(set_to_none=True)
        h = _inputs(x, embed, rates.get("embed_dropout"))
        h = _at_site(h, "input", rates)
        out = _recurrence(rnn, h, rates.get("weight_drop"))
        top = out if every_step else out[-1:]
        dropped = _at_site(top, "output", rates)
        logits = head(dropped if size.kind == "classify_each" else dropped[-1])
        loss = logits.square().mean()
        if "ar_tar" in rates:
            alpha, beta = rates["ar_tar"]["alpha"], rates["ar_tar"]["beta"]
            ar = alpha * dropped.pow(2).mean()
            loss = loss + ar + beta * (out[1:] - out[:-1]).pow(2).mean()
        loss.backward()
        return loss.detach()

    return model, step


def _inputs(x: Tensor, embed: nn.Module, params: dict | None) -> Tensor:
    """Time-major inputs: features as they are, or token embeddings (from a row-masked
    matrix under embedding dropout, one mask per minibatch)."""
    if not isinstance(embed, nn.Embedding):
        return x.transpose(0, 1)
    weight = embed.weight
    if params is not None:
        p = params["p_embed"]
        rows = weight.new_empty((weight.shape[0], 1)).bernoulli_(1 - p) / (1 - p)
        weight = rows * weight
    return F.embedding(x.transpose(0, 1), weight)


def _at_site(h: Tensor, site: str, rates: dict[str, dict]) -> Tensor:
    for key in SITE_DROPOUTS:
        if key not in rates:
            continue
        p = rates[key][f"p_{site}"]
        if key == "dropout":
            h = F.dropout(h, p, training=True)
        else:
            mask = h.new_empty((1, *h.shape[1:])).bernoulli_(1 - p) / (1 - p)
            h = h * mask
    return h


def _recurrence(rnn: nn.LSTM, h: Tensor, params: dict | None) -> Tensor:
    if params is None:
        return rnn(h)[0]
    dropped = F.dropout(rnn.weight_hh_l0, params["p_weight"], training=True)
    return torch.func.functional_call(rnn, {"weight_hh_l0": dropped}, (h,))[0]
