"""The speed layer: how a custom cell's steps run fast, behind one entry point.

The science (which terms a regularizer adds, how a cell steps) lives in models/plan.py,
models/cells.py and models/variants/; this package only chooses how to compute it, and a
change in torch that breaks one mechanism breaks it here:

- walker.py: `walk_custom`, the one entry point models/layer.py calls for a custom layer;
- steps.py: step modes, and the steps as torch.compile'd K-step chunks;
- graphs.py: step mode 'graph', the compiled walk recorded as CUDA graphs;
- projection.py: the input projection hoisted, or computed inside compiled CPU steps;
- weight_grad.py: W_hh's gradient as one product over all steps;
- gemm.py: the CPU's large products in oneDNN instead of MKL.

What each was measured to gain, and where: results/perf/README.md.
"""

from regbench.models.speed.graphs import forget
from regbench.models.speed.projection import InputProjection
from regbench.models.speed.steps import DEFAULT_CHUNK, StepMode, compiles
from regbench.models.speed.walker import walk_custom

__all__ = ["DEFAULT_CHUNK", "InputProjection", "StepMode", "compiles", "forget", "walk_custom"]
