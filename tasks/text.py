"""Vocabularies, token ids and padding for the text tasks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import torch

PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"


def vocabulary_in_order(lines: Iterable[Sequence[str]]) -> list[str]:
    """Every token type, in order of first occurrence (pytorch/examples' convention)."""
    seen: dict[str, None] = {}
    for tokens in lines:
        seen.update(dict.fromkeys(tokens))
    return list(seen)


def vocabulary_by_count(lines: Iterable[Sequence[str]], size: int) -> list[str]:
    """<pad>, <unk>, then the `size` − 2 most frequent types (ties by first occurrence)."""
    counts = Counter(t for tokens in lines for t in tokens)
    common = [t for t, _ in counts.most_common(size - 2 if size else None)]
    return [PAD, UNK, *common]


def stream(lines: Iterable[Sequence[str]], index: dict[str, int]) -> torch.Tensor:
    """All tokens of all lines, each line closed by <eos>, as one id stream."""
    eos = index[EOS]
    ids: list[int] = []
    for tokens in lines:
        ids.extend(index[t] for t in tokens)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def padded(sequences: Sequence[Sequence[str]], index: dict[str, int]) -> dict[str, torch.Tensor]:
    """Right-padded (N, T_max) ids and the lengths; unknown tokens map to <unk>."""
    unk = index[UNK]
    lengths = torch.tensor([max(len(s), 1) for s in sequences], dtype=torch.long)
    ids = torch.full((len(sequences), int(lengths.max())), index[PAD], dtype=torch.long)
    for row, tokens in enumerate(sequences):
        if tokens:
            ids[row, : len(tokens)] = torch.tensor([index.get(t, unk) for t in tokens])
    return {"x": ids, "lengths": lengths}
