"""The hub path through `datasets`: local folders laid out like the hub repositories (parquet
files and a README declaring configurations and splits), loaded by the real tasks."""

from __future__ import annotations

from pathlib import Path

import pytest

import fixtures
from helpers import task_instance
from regbench.tasks import imdb, ptb, sst, wikitext


def hub_repo(root: Path, config: str, splits: dict[str, dict[str, list]]) -> Path:
    """A dataset repository: <config>/<split>-00000-of-00001.parquet and a README card."""
    import datasets

    (root / config).mkdir(parents=True)
    card = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
    for split, columns in splits.items():
        datasets.Dataset.from_dict(columns).to_parquet(
            root / config / f"{split}-00000-of-00001.parquet"
        )
        card += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (root / "README.md").write_text("\n".join([*card, "---", ""]))
    return root


def from_hub(name: str, **params):
    task = task_instance(name, None, batch_size=2, **params)
    task.setup()
    return task


def test_ptb_word_from_a_parquet_export(tmp_path, monkeypatch):
    lines = {
        s: [ln.strip() for ln in fixtures.PTB_LINES[f]]
        for s, f in (("train", "train"), ("validation", "valid"), ("test", "test"))
    }
    repo = hub_repo(
        tmp_path / "ptb", "ptb_text_only", {s: {"sentence": v} for s, v in lines.items()}
    )
    monkeypatch.setattr(ptb, "HUB_ID", str(repo))
    monkeypatch.setattr(ptb, "HUB_REVISION", None)
    counts = {
        s: sum(len(ln.split()) + 1 for ln in v)
        for s, v in zip(("train", "val", "test"), lines.values(), strict=True)
    }
    monkeypatch.setattr(ptb.PtbWord, "expected_tokens", lambda self: counts)
    hub = from_hub("ptb_word")
    assert hub.source()["kind"] == "hub" and len(hub.vocab) == 9
    char = from_hub("ptb_char")
    assert "_" in char.vocab and "<eos>" in char.vocab


def test_wikitext_configuration_and_blank_lines(tmp_path, monkeypatch):
    rows = {
        "train": ["", " = A = ", " the cat sat ", ""],
        "validation": [" the cat "],
        "test": ["", " sat "],
    }
    repo = hub_repo(tmp_path / "wt", "wikitext-2-v1", {s: {"text": v} for s, v in rows.items()})
    monkeypatch.setattr(wikitext, "HUB_ID", str(repo))
    monkeypatch.setattr(wikitext, "VOCAB", 6)
    monkeypatch.setattr(
        wikitext.WikiText2, "expected_tokens", lambda self: {"train": 10, "val": 3, "test": 3}
    )
    task = from_hub("wikitext2")
    assert task.split_sizes() == {"train": 10, "val": 3, "test": 3}  # blank rows are <eos>


def test_sst2_and_imdb_sentences_from_the_hub_layout(tmp_path, monkeypatch):
    sst_repo = hub_repo(
        tmp_path / "sst",
        "default",
        {
            "train": {"text": ["A great film", "awful plot"], "label": [1, 0]},
            "validation": {"text": ["good"], "label": [1]},
            "test": {"text": ["bad film"], "label": [0]},
        },
    )
    real_load = sst.load_hub
    monkeypatch.setattr(
        sst, "load_hub", lambda task, path, hint: real_load(task, str(sst_repo), hint)
    )
    task = from_hub("sst2", train_subtrees=0)
    assert task.split_sizes() == {"train": 2, "val": 1, "test": 1} and "great" in task.vocab

    reviews = {"text": ["a fine film<br />yes", "dull"] * 3, "label": [1, 0] * 3}
    imdb_repo = hub_repo(tmp_path / "imdb", "plain_text", {"train": reviews, "test": reviews})
    real_imdb = imdb.load_hub
    monkeypatch.setattr(
        imdb, "load_hub", lambda task, path, hint: real_imdb(task, str(imdb_repo), hint)
    )
    task = from_hub("imdb", n_val=2)
    assert task.split_sizes() == {"train": 4, "val": 2, "test": 6}


def test_sst2_phrases_need_the_treebank_files():
    with pytest.raises(sst.DataError, match="train_subtrees > 0 needs the treebank files"):
        from_hub("sst2")
