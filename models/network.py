"""The one backbone every variant shares: input → stacked recurrent layers → head.

    x ─ embedding or raw features ─[input]─ layer 0 ─[hidden]─ … ─ layer L−1 ─[output]─ head

Regularizers act at the bracketed sites, on W_hh, inside the recurrence, or on the loss
(see models/variants/base.py). The head reads the last step (classification, regression) or
every step (per-step prediction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from regbench.models.cells import GATES, State
from regbench.models.layer import RecurrentLayer
from regbench.models.speed import DEFAULT_CHUNK, StepMode, forget
from regbench.models.variants import check_composition
from regbench.models.variants.base import LayerDims, Regularizer, Site
from regbench.tasks.base import InputSpec, OutputKind


@dataclass
class NetOutput:
    prediction: Tensor  # (B, C) last-step logits, (B, T, C) per-step logits, or (B,) values
    penalty: Tensor | None
    state: list[State]


class RecurrentNet(nn.Module):
    """Stacked LSTM/GRU/tanh-RNN with regularizer hooks and a task head."""

    def __init__(
        self,
        spec: InputSpec,
        kind: OutputKind,
        cell: str,
        hidden_size: int,
        num_layers: int,
        embedding_size: int,
        regularizers: Sequence[Regularizer] = (),
        one_hot: bool = False,
        tie_weights: bool = False,
        learned_state: bool = False,
        h0_noise: float = 0.0,
    ) -> None:
        super().__init__()
        check_composition([type(r) for r in regularizers], cell, spec.tokens)
        self.kind = kind
        self.embedding = None
        if spec.tokens and one_hot:  # a fixed identity: one-hot input vectors
            self.register_buffer("one_hot", torch.eye(spec.vocab_size), persistent=False)
            embedding_size = spec.vocab_size
        elif spec.tokens:
            self.embedding = nn.Embedding(spec.vocab_size, embedding_size)
        in_size = embedding_size if spec.tokens else spec.features
        sizes = [in_size] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(
            RecurrentLayer(cell, sizes[i], sizes[i + 1]) for i in range(num_layers)
        )
        self.head = nn.Linear(hidden_size, spec.num_outputs)
        if tie_weights:  # the softmax shares the embedding (Press & Wolf 2017)
            self.head.weight = self.embedding.weight
        self.regularizers = nn.ModuleList(regularizers)
        dims = [LayerDims(cell, sizes[i], sizes[i + 1], GATES[cell]) for i in range(num_layers)]
        for reg in self.regularizers:
            reg.bind(dims)
        self.h0_noise = h0_noise
        self.initial = None
        if learned_state:  # h_0 (and c_0) of every layer, learned from zeros (Cooijmans et al.)
            parts = 2 if cell == "lstm" else 1
            self.initial = nn.ParameterList(
                nn.Parameter(torch.zeros(hidden_size)) for _ in range(num_layers * parts)
            )

    def forward(
        self, x: Tensor, lengths: Tensor | None = None, state: list[State] | None = None
    ) -> NetOutput:
        h = self._site(self._embed(x), "input", 0)
        state = self._initial_state(h) if state is None else state
        custom = any(r.custom_cell for r in self.regularizers)
        new_state: list[State] = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                h = self._site(h, "hidden", i - 1)
            h, s = layer(h, state[i] if state else None, self.regularizers, i, custom, lengths)
            new_state.append(s)
        every = self._reads_every_step
        top = h if every else self._last_step(h, lengths)
        dropped = self._site(top, "output", len(self.layers) - 1)
        penalty = self._penalty(h, dropped, lengths)
        if every and self.kind != "classify_each":  # all steps kept for a penalty only
            dropped = self._last_step(dropped, lengths)
        return NetOutput(self._head(dropped), penalty, new_state)

    def _initial_state(self, x: Tensor) -> list[State] | None:
        """Each layer's starting state for a batch that carries none: None (the layers start
        from zeros) unless h_0 is learned or noisy. Cooijmans et al. 2017 (Sec. 2; their code
        too) make h_0 and c_0 parameters, and for sequential MNIST add Gaussian noise to h_0
        (Sec. 5.1) so that batch statistics of the first, near-constant steps have variance;
        the noise is drawn in training only (their code draws it at evaluation too: here
        evaluation takes its mean, as for every other stochastic regularizer)."""
        noisy = self.h0_noise > 0.0 and self.training
        if self.initial is None and not noisy:
            return None
        batch, parts = x.shape[1], 2 if self.layers[0].cell == "lstm" else 1
        states = []
        for i, layer in enumerate(self.layers):
            if self.initial is None:
                zeros = layer.initial_state(batch, x)
            else:
                learned = self.initial[i * parts : (i + 1) * parts]
                zeros = tuple(p.to(x.dtype).expand(batch, -1) for p in learned)
            h = zeros[0] + self.h0_noise * torch.randn_like(zeros[0]) if noisy else zeros[0]
            states.append((h, *zeros[1:]))
        return states

    @property
    def _reads_every_step(self) -> bool:
        """Whether anything reads the top layer beyond the last step: the per-step head, or a
        penalty on all outputs. If not, output dropout is applied to the last step only
        (the same distribution, at 1/T of the cost)."""
        return self.kind == "classify_each" or any("penalty" in r.claims for r in self.regularizers)

    @staticmethod
    def _last_step(h: Tensor, lengths: Tensor | None) -> Tensor:
        """(T, B, H) → (1, B, H): the last step, or each sequence's last valid step."""
        if lengths is None:
            return h[-1:]
        return h[lengths - 1, torch.arange(h.shape[1], device=h.device)].unsqueeze(0)

    def _embed(self, x: Tensor) -> Tensor:
        """(B, T) tokens or (B, T, F) features → time-major (T, B, F)."""
        if x.is_floating_point():
            return x.transpose(0, 1)
        tokens = x.transpose(0, 1)
        weight = self.embedding.weight if self.embedding is not None else self.one_hot
        for reg in self.regularizers:
            vectors = reg.embed(tokens, weight)
            if vectors is not None:
                return vectors
        return F.embedding(tokens, weight)

    def _site(self, h: Tensor, site: Site, layer: int) -> Tensor:
        for reg in self.regularizers:
            h = reg.at_site(h, site, layer)
        return h

    def _penalty(self, raw: Tensor, dropped: Tensor, lengths: Tensor | None) -> Tensor | None:
        terms = [
            t for r in self.regularizers if (t := r.penalty(raw, dropped, lengths)) is not None
        ]
        if len(terms) < 2:
            return terms[0] if terms else None
        return torch.stack(terms).sum()

    def _head(self, top: Tensor) -> Tensor:
        if self.kind == "classify_each":
            return self.head(top).transpose(0, 1)
        out = self.head(top[-1])
        return out.squeeze(-1) if self.kind == "regress_last" else out

    def set_step_mode(self, mode: StepMode, chunk: int = DEFAULT_CHUNK) -> None:
        """How custom cells walk their steps (models/speed/); numerics are unchanged up to
        floating-point reassociation."""
        for layer in self.layers:
            layer.step_mode, layer.chunk = mode, chunk
            forget(layer)  # recorded CUDA graphs (models/speed/graphs.py) and their memory

    def initialize(self, scheme: str, scale: float, forget_bias: float | None) -> None:
        """'default' keeps PyTorch's init; 'uniform' draws every weight and bias of the
        embedding, the recurrent layers and the head from U(±scale) (Zaremba et al. 2014);
        'orthogonal' makes each gate's block of W_ih and W_hh orthogonal and the recurrent
        biases 0 (Cooijmans et al. 2017; Wen et al. 2018); 'orthogonal_identity' does too, but
        makes W_hh's candidate block (LSTM g, GRU n, the tanh-RNN's whole W_hh) the identity
        (Cooijmans et al. 2017, Sec. 5.1, sequential MNIST: "orthogonal initialization for all
        weight matrices, except for the hidden-to-hidden weight matrix which we initialize to
        be the identity"; their code puts the identity in the candidate's block of the
        d_h × 4d_h matrix). A forget-gate bias, if given, is put in b_ih (b_hh's part 0).
        Parameters a regularizer owns (normalization gains and shifts) and a learned initial
        state (zeros) keep their paper initialization under every scheme."""
        if scheme == "uniform":
            for p in self._own_parameters():
                nn.init.uniform_(p, -scale, scale)
        elif scheme in ("orthogonal", "orthogonal_identity"):
            for layer in self.layers:
                _orthogonal_gates(layer, identity=scheme == "orthogonal_identity")
        elif scheme == "uniform_ends":  # pytorch/examples word_language_model
            for weight in (self.head.weight, *([self.embedding.weight] if self.embedding else [])):
                nn.init.uniform_(weight, -scale, scale)
            nn.init.zeros_(self.head.bias)
        elif scheme != "default":
            raise ValueError(f"unknown init scheme {scheme!r}")
        if forget_bias is not None:
            self._set_forget_bias(forget_bias)

    def _own_parameters(self) -> list[nn.Parameter]:
        """The network's parameters without the regularizers' own and the learned initial
        state, in registration order."""
        owned = {id(p) for p in self.regularizers.parameters()}
        owned |= {id(p) for p in (self.initial.parameters() if self.initial is not None else [])}
        return [p for p in self.parameters() if id(p) not in owned]

    def _set_forget_bias(self, value: float) -> None:
        for layer in self.layers:
            if layer.cell != "lstm":
                continue
            n = layer.hidden_size
            with torch.no_grad():
                layer.rnn.bias_ih_l0[n : 2 * n].fill_(value)
                layer.rnn.bias_hh_l0[n : 2 * n].zero_()


CANDIDATE = {"lstm": 2, "gru": 2, "rnn": 0}  # the candidate's block in PyTorch's gate order


def _orthogonal_gates(layer: RecurrentLayer, identity: bool = False) -> None:
    rnn = layer.rnn
    with torch.no_grad():
        for weight in (rnn.weight_ih_l0, rnn.weight_hh_l0):
            for block in weight.chunk(layer.gates, 0):
                nn.init.orthogonal_(block)
        if identity:
            nn.init.eye_(rnn.weight_hh_l0.chunk(layer.gates, 0)[CANDIDATE[layer.cell]])
        rnn.bias_ih_l0.zero_()
        rnn.bias_hh_l0.zero_()
