"""WikiText-2 word-level language modelling (Merity et al. 2016), tokenized version.

2,088,628 / 217,646 / 245,569 tokens with one <eos> per line (blank lines included, as
pytorch/examples reads the files), vocabulary 33,278; perplexity. Default protocol: Zaremba et
al. 2014's "medium" recipe (2×650, BPTT 35, batch 20, SGD lr 1 on the loss summed over the
window, lr ÷1.2 per epoch after epoch 6, 39 epochs, clip 5, U(±0.05)).

Local files (`--data-dir`): `wikitext-2/wiki.{train,valid,test}.tokens` from the original
`wikitext-2-v1.zip`, checked by their token counts and vocabulary size. Hub:
`Salesforce/wikitext`, configuration `wikitext-2-v1`.
"""

from __future__ import annotations

from regbench.tasks.base import Protocol
from regbench.tasks.language import LanguageModelTask
from regbench.tasks.registry import register_task
from regbench.tasks.sources import (
    DataError,
    digest,
    fingerprint,
    hub_key,
    load_hub,
    load_text_files,
    read_bytes,
)

HUB_ID, HUB_CONFIG = "Salesforce/wikitext", "wikitext-2-v1"
HINT = "wikitext-2/wiki.{train,valid,test}.tokens (the original wikitext-2-v1.zip)"
VOCAB = 33_278


@register_task
class WikiText2(LanguageModelTask):
    protocol = Protocol(
        name="wikitext2",
        version=1,
        metric="perplexity",
        kind="classify_each",
        tokens=True,
        splits="2,088,628 / 217,646 / 245,569 tokens (one <eos> per line), vocabulary 33,278",
        reference="Zaremba et al. 2014 medium recipe on WikiText-2 (Merity et al. 2016); "
        "no published number for exactly this protocol",
        params={"bptt": 35},
        model={
            "hidden_size": 650,
            "num_layers": 2,
            "embedding_size": 650,
            "init": "uniform",
            "init_scale": 0.05,
        },
        train={
            "optimizer": "sgd",
            "lr": 1.0,
            "batch_size": 20,
            "eval_batch_size": 10,
            "max_epochs": 39,
            "clip": 5.0,
            "schedule": "decay",
            "decay_start": 6,
            "decay_factor": 1 / 1.2,
            "loss": "sum_steps",
        },
        regularizers={"dropout": {"p_input": 0.5, "p_hidden": 0.5, "p_output": 0.5}},
    )

    def read_lines(self) -> tuple[dict[str, list[list[str]]], str]:
        if self.data_dir is None:
            data = load_hub("wikitext2", HUB_ID, HINT, name=HUB_CONFIG)
            splits = {"train": "train", "val": "validation", "test": "test"}
            text = {s: data[h]["text"] for s, h in splits.items()}
            key = hub_key(data)
        else:
            folder = self.data_dir / "wikitext-2"
            files = {
                s: folder / f"wiki.{n}.tokens"
                for s, n in (("train", "train"), ("val", "valid"), ("test", "test"))
            }
            key = fingerprint(
                digest(read_bytes(path, f"WikiText-2 {split} file", f"expected {HINT}."))
                for split, path in files.items()
            )
            text = load_text_files(files)
        lines = {s: [ln.split() for ln in rows] for s, rows in text.items()}
        return lines, key

    def expected_tokens(self) -> dict[str, int]:
        return {"train": 2_088_628, "val": 217_646, "test": 245_569}

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if len(self.vocab) != VOCAB:
            raise DataError(
                f"wikitext2: vocabulary of {len(self.vocab):,} types, expected "
                f"{VOCAB:,}; the files are not the tokenized WikiText-2."
            )
