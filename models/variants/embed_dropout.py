"""Embedding dropout: drop whole word types from the embedding matrix.

Gal & Ghahramani 2016, Sec. 4.2, and Merity et al. 2017 (AWD-LSTM), Sec. 4.3: rows of the
V × D embedding matrix are zeroed with probability p and the rest scaled by 1/(1 − p), so every
occurrence of a dropped word disappears. The row mask is applied to the looked-up vectors
(the same values as looking up the masked matrix, without a V × D product per forward).
AWD draws one mask per minibatch (the default); Gal draws one per sequence
(`per_sequence: true`). Off at eval. Needs a token-input task.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from regbench.models.variants.base import Regularizer
from regbench.models.variants.masks import keep_mask


class EmbeddingDropout(Regularizer):
    key = "embed_dropout"
    version = 2  # 2: masks from k random bits (see variants/masks.py)
    citation = "Gal & Ghahramani 2016, Sec. 4.2; Merity et al. 2017, Sec. 4.3"
    claims = ("embedding",)
    needs_tokens = True
    defaults = {"p_embed": 0.1, "per_sequence": False}

    def embed(self, tokens: Tensor, weight: Tensor) -> Tensor | None:
        p = self.params["p_embed"]
        if p == 0.0 or not self.training:
            return None
        vectors = F.embedding(tokens, weight)
        if not self.params["per_sequence"]:
            mask = keep_mask((weight.shape[0],), p, weight)  # one per word type
            return vectors * mask[tokens].unsqueeze(-1)
        mask = keep_mask((tokens.shape[1], weight.shape[0]), p, weight)  # (B, V)
        return vectors * mask.gather(1, tokens.T).T.unsqueeze(-1)
