"""Penn Treebank language modelling (Mikolov et al.'s preprocessing): word and character level.

Word level: 929,589 / 73,760 / 82,430 tokens with one <eos> per line, a 10,000-word
vocabulary; perplexity. Default protocol: Zaremba et al. 2014 "small" (2×200 LSTM, untied,
U(±0.1), BPTT 20, batch 20, SGD lr 1 on the loss summed over the window, lr halved per epoch
after epoch 4, 13 epochs, clip 5; val / test perplexity 120.7 / 114.5).

Character level: Mikolov's `ptb.char.*` files (characters separated by spaces, '_' between
words), 49 symbols plus an end-of-line token; bits per character. Default protocol: Wen et al.
2018's comparison (1×1000 LSTM, sequences of 100, batch 32, Adam 2e-3, clip 1; one-hot input).

Local files (`--data-dir`): `ptb/ptb.{train,valid,test}.txt`, `ptb_char/ptb.char.train.txt.gz`
and `ptb.char.{valid,test}.txt`, checked against their published hashes. Hub: the parquet
export of `ptb-text-only/ptb_text_only` (the character files are exactly its sentences split
into characters, so the character task is built from it too).
"""

from __future__ import annotations

from pathlib import Path

from regbench.tasks.base import Protocol
from regbench.tasks.language import LanguageModelTask
from regbench.tasks.registry import register_task
from regbench.tasks.sources import (
    check_digest,
    fingerprint,
    gunzip,
    hub_key,
    load_hub,
    load_text_files,
    read_bytes,
)

SPLIT_NAMES = {"train": "train", "val": "valid", "test": "test"}
HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
HUB_ID, HUB_REVISION = "ptb-text-only/ptb_text_only", "refs/convert/parquet"
HINT = "the Mikolov PTB files (ptb.train.txt, …), e.g. from the simple-examples tarball."
WORD_MD5 = {  # torchtext's reference hashes
    "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "val": "aa0affc06ff7c36e977d7cd49e3839bf",
    "test": "8b80168b89c18661a38ef683c0dc3721",
}
CHAR_GIT_SHA1 = {  # blob ids of the reference copies (content after gunzip)
    "train": "84b890a87aed6ad2989aa12d03f1129c41d727b2",
    "val": "940c7ea52db925f46874bc9e1ea37424beec6c98",
    "test": "4e866a8573cdd7d0ce6af45c034055adecc3bbd4",
}


def word_files(folder: Path) -> dict[str, Path]:
    return {s: folder / "ptb" / f"ptb.{name}.txt" for s, name in SPLIT_NAMES.items()}


def char_files(folder: Path) -> dict[str, Path]:
    base = folder / "ptb_char"
    return {
        s: base / (f"ptb.char.{name}.txt" + (".gz" if s == "train" else ""))
        for s, name in SPLIT_NAMES.items()
    }


def read_verified(files: dict[str, Path], expected: dict[str, str], algorithm: str) -> None:
    for split, path in files.items():
        data = read_bytes(path, f"PTB {split} file", f"expected {HINT}")
        if path.suffix == ".gz":
            data = gunzip(path, data)
        check_digest(path, data, expected[split], algorithm)


def hub_sentences() -> tuple[dict[str, list[str]], str]:
    data = load_hub("ptb", HUB_ID, HINT, revision=HUB_REVISION)
    return {s: data[hub]["sentence"] for s, hub in HUB_SPLITS.items()}, hub_key(data)


@register_task
class PtbWord(LanguageModelTask):
    protocol = Protocol(
        name="ptb_word",
        version=1,
        metric="perplexity",
        kind="classify_each",
        tokens=True,
        splits="929,589 / 73,760 / 82,430 tokens (one <eos> per line), vocabulary 10,000",
        reference="Zaremba et al. 2014, Table 1, small: val / test perplexity 120.7 / 114.5",
        params={"bptt": 20},
        model={
            "hidden_size": 200,
            "num_layers": 2,
            "embedding_size": 200,
            "init": "uniform",
            "init_scale": 0.1,
        },
        train={
            "optimizer": "sgd",
            "lr": 1.0,
            "batch_size": 20,
            "eval_batch_size": 10,
            "max_epochs": 13,
            "clip": 5.0,
            "schedule": "decay",
            "decay_start": 4,
            "decay_factor": 0.5,
            "loss": "sum_steps",
        },
        regularizers={"dropout": {"p_input": 0.5, "p_hidden": 0.5, "p_output": 0.5}},
    )

    def read_lines(self) -> tuple[dict[str, list[list[str]]], str]:
        if self.data_dir is None:
            text, key = hub_sentences()
        else:
            files = word_files(self.data_dir)
            read_verified(files, WORD_MD5, "md5")
            text = load_text_files(files)
            key = fingerprint(WORD_MD5.values())
        return {s: [line.split() for line in lines] for s, lines in text.items()}, key

    def expected_tokens(self) -> dict[str, int]:
        return {"train": 929_589, "val": 73_760, "test": 82_430}


@register_task
class PtbChar(LanguageModelTask):
    protocol = Protocol(
        name="ptb_char",
        version=1,
        metric="bpc",
        kind="classify_each",
        tokens=True,
        splits="about 5.0M / 394k / 443k characters plus one end-of-line per line; 50 symbols",
        reference="Wen et al. 2018, Table 2 and App. D.1: LSTM 1×1000, test BPC 1.423 "
        "unregularized (Krueger et al. 2017: 1.356)",
        params={"bptt": 100},
        model={"hidden_size": 1000, "num_layers": 1, "embedding": "one_hot", "init": "orthogonal"},
        train={
            "optimizer": "adam",
            "lr": 2e-3,
            "batch_size": 32,
            "eval_batch_size": 32,
            "max_epochs": 20,
            "clip": 1.0,
        },
        regularizers={
            "zoneout": {"z_c": 0.5, "z_h": 0.05},
            "recurrent_dropout": {"p_update": 0.25},
            "variational": {"p_input": 0.0, "p_hidden": 0.0, "p_output": 0.0, "p_recurrent": 0.25},
        },
    )

    def read_lines(self) -> tuple[dict[str, list[list[str]]], str]:
        if self.data_dir is None:
            words, key = hub_sentences()
            lines = {s: [list("_".join(ln.split())) for ln in ws] for s, ws in words.items()}
            return lines, fingerprint([key, "chars"])
        files = char_files(self.data_dir)
        read_verified(files, CHAR_GIT_SHA1, "git")
        text = load_text_files(files)
        lines = {s: [ln.split() for ln in rows if ln.strip()] for s, rows in text.items()}
        return lines, fingerprint(CHAR_GIT_SHA1.values())
