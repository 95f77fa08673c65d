"""Models: recurrent cells, one module per regularizer, and the LightningModule composing them."""

from regbench.models.module import SequenceModel, build_network
from regbench.models.network import RecurrentNet
from regbench.models.variants import REGULARIZERS, parse_variant, variant_names

__all__ = [
    "REGULARIZERS",
    "RecurrentNet",
    "SequenceModel",
    "build_network",
    "parse_variant",
    "variant_names",
]
