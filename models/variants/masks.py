"""Bernoulli masks from as few random bits as the probability needs.

A mask element is kept when a uniform k-bit integer u is below m, so P(keep) = m / 2^k. For a
probability that is a multiple of 2^-k with k ≤ 8 (0.5, 0.25, 0.75, …) this is exact with k
bits per element (one bit for p = 0.5); any other probability uses k = 16 and is rounded to the
nearest multiple of 2^-16 (within 7.7e-6, e.g. 0.4 → 0.399994; a rate below 2^-17 becomes 0,
and below ~1e-3 the relative error exceeds 1 %). Inverted dropout scales by the reciprocal of
the probability actually used, so a mask's mean is 1 up to the rounding of that scale in the
mask's dtype. The bits come from the framework's generator as full-range 64-bit integers
(`random_`), 64/k elements per draw: on the CPU a float32 `torch.rand` costs one 32-bit draw
per element, and was most of the cost of the dropout variants. A (35, 20, 200) mask on this
2-core host: 300 µs as uniform < p; 40 µs at p = 0.5, 50 µs at 0.25, 75 µs at 4 bits, 130 µs
at 16 bits (mostly the draws).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

WIDE_BITS = 16
NARROW_BITS = (1, 2, 4, 8)


def quantize(prob: float) -> tuple[int, int]:
    """(k, m): keep an element when its uniform k-bit integer is < m, i.e. with probability
    m / 2^k, the fewest bits that represent `prob` exactly, else `prob` rounded to 16 bits."""
    prob = float(prob)
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"a mask's keep probability must be in [0, 1], got {prob}")
    for bits in NARROW_BITS:
        if (prob * 2**bits).is_integer():
            return bits, int(prob * 2**bits)
    return WIDE_BITS, round(prob * 2**WIDE_BITS)


def effective_probability(prob: float) -> float:
    """The probability a mask drawn for `prob` actually has (m / 2^k)."""
    bits, level = quantize(prob)
    return level / 2**bits


def random_words(count: int, bits: int, device: torch.device) -> Tensor:
    """Enough full-range 64-bit draws for `count` fields of `bits` bits."""
    words = -(-count * bits // 64)
    return torch.empty(words, dtype=torch.int64, device=device).random_(-(2**63), None)


PACKED = {1: torch.int64, 2: torch.int32, 4: torch.int16}  # 8 / bits bytes
COMPARED = {8: (torch.uint8, 0), WIDE_BITS: (torch.int16, -(2**15))}  # dtype, lowest value


@functools.lru_cache(maxsize=64)
def octet_table(bits: int, level: int, device: torch.device) -> Tensor:
    """(256,): for each octet of random bits, its 8 / `bits` fields (low bits first) as bytes,
    1 where the field is < `level`, else 0, packed into one integer of 8 / `bits` bytes (a
    native-endian view of the packed integers reads them back in order)."""
    shifts = torch.arange(0, 8, bits)
    fields = (torch.arange(256).unsqueeze(-1) >> shifts) & (2**bits - 1)
    return fields.lt(level).to(torch.uint8).view(PACKED[bits]).view(-1).to(device)


def bernoulli_mask(shape: tuple[int, ...], prob: float, like: Tensor, value: float = 1.0) -> Tensor:
    """`value` with probability `effective_probability(prob)`, else 0, shaped `shape`, in the
    dtype and on the device of `like`. Fields of 1, 2 or 4 bits are decoded an octet at a time
    through a lookup table; 8- and 16-bit fields are compared as uint8 / int16."""
    bits, level = quantize(prob)
    if level in (0, 2**bits):  # never or always kept
        return torch.full(shape, value if level else 0.0, dtype=like.dtype, device=like.device)
    count = math.prod(shape)
    draws = random_words(count, bits, like.device)
    if bits in COMPARED:
        dtype, low = COMPARED[bits]
        keep = draws.view(dtype)[:count].view(shape).lt(low + level)
    else:
        octets = draws.view(torch.uint8)[: -(-count * bits // 8)]
        packed = octet_table(bits, level, like.device).index_select(0, octets.long())
        keep = packed.view(torch.uint8)[:count].view(shape)
    mask = keep.view(torch.uint8).to(like.dtype)  # via uint8: several times faster from bool
    return mask if value == 1.0 else mask.mul_(value)


def keep_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """Inverted dropout's mask for drop rate `p`: Bernoulli(1 − p) scaled by the reciprocal of
    the keep probability used (all zeros when that rounds to 0)."""
    keep = effective_probability(1.0 - p)
    return bernoulli_mask(shape, 1.0 - p, like, 1.0 / keep if keep else 0.0)


def dropout(x: Tensor, p: float) -> Tensor:
    """Inverted dropout with a fresh mask for every element of `x` (training only)."""
    return x * keep_mask(tuple(x.shape), p, x)


def locked(x: Tensor, p: float) -> Tensor:
    """Dropout with one mask per sequence and feature, shared by all steps of (T, B, F) `x`
    (Gal & Ghahramani 2016; Merity et al. 2017's LockedDropout)."""
    return x * keep_mask((1, x.shape[1], x.shape[2]), p, x)
