"""The real tasks, built from tiny fixtures in the original formats (the data path is real:
`datasets` reads the text files, our readers the IDX, tree and review files)."""

from __future__ import annotations

import pytest
import torch

import fixtures
from helpers import task_instance
from regbench.tasks import imdb, mnist, ptb, sst


def make(name, root, **params):
    task = task_instance(name, root, **params)
    task.setup()
    return task


@pytest.fixture
def ptb_root(tmp_path, monkeypatch):
    monkeypatch.setattr(ptb, "WORD_MD5", fixtures.write_ptb(tmp_path))
    monkeypatch.setattr(ptb, "CHAR_GIT_SHA1", fixtures.write_ptb_char(tmp_path))
    counts = {
        s: sum(len(ln.split()) + 1 for ln in lines)
        for s, lines in (
            ("train", fixtures.PTB_LINES["train"]),
            ("val", fixtures.PTB_LINES["valid"]),
            ("test", fixtures.PTB_LINES["test"]),
        )
    }
    monkeypatch.setattr(ptb.PtbWord, "expected_tokens", lambda self: counts)
    return tmp_path


def test_ptb_word_tokens_vocabulary_and_eos(ptb_root):
    task = make("ptb_word", ptb_root)
    assert task.vocab[:3] == ["the", "cat", "sat"] and task.vocab[-1] == "<eos>"
    assert len(task.vocab) == 9
    train = task.splits["train"]
    eos = task.vocab.index("<eos>")
    assert int((train == eos).sum()) == len(fixtures.PTB_LINES["train"])
    assert task.input_spec().vocab_size == 9 == task.input_spec().num_outputs


def test_bptt_windows_continue_the_stream_and_shift_targets_by_one(ptb_root):
    task = make("ptb_word", ptb_root, bptt=3)
    task.batch_size = 2
    windows = list(task.train_dataloader())
    rows = task.splits["train"][: len(task.splits["train"]) // 2 * 2].view(2, -1)
    first, second = windows[0], windows[1]
    assert first["stateful"] and first["x"].shape == (2, 3)
    assert torch.equal(first["x"], rows[:, :3]) and torch.equal(first["y"], rows[:, 1:4])
    assert torch.equal(second["x"], rows[:, 3:6])
    assert torch.equal(torch.cat([w["y"] for w in windows], 1), rows[:, 1:])


def test_ptb_char_symbols_word_boundaries_and_end_of_line(ptb_root):
    task = make("ptb_char", ptb_root)
    assert "_" in task.vocab and "<eos>" in task.vocab and " " not in task.vocab
    first_line = fixtures.PTB_LINES["train"][0]
    expected = [*"_".join(first_line.split()), "<eos>"]
    decoded = [task.vocab[i] for i in task.splits["train"][: len(expected)]]
    assert decoded == expected
    lines = len(fixtures.PTB_LINES["train"])
    assert int((task.splits["train"] == task.vocab.index("<eos>")).sum()) == lines


def test_mnist_splits_normalization_and_fixed_permutation(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "IDX", fixtures.write_mnist(tmp_path))
    s = make("smnist", tmp_path, n_val=10)
    assert s.split_sizes() == {"train": 50, "val": 10, "test": 20}
    x = s.splits["test"].tensors["x"]
    assert x.shape == (20, 784, 1)
    raw = mnist.load_local(tmp_path)["test_x"].reshape(20, 784)
    torch.testing.assert_close(x[..., 0], torch.from_numpy((raw / 255.0 - 0.1307) / 0.3081).float())
    p1, p1b, p2 = (make("pmnist", tmp_path, n_val=10, perm_seed=k) for k in (1, 1, 2))
    xp = p1.splits["test"].tensors["x"][..., 0]
    assert torch.equal(xp, p1b.splits["test"].tensors["x"][..., 0])
    assert not torch.equal(xp, p2.splits["test"].tensors["x"][..., 0])
    assert torch.equal(xp.sort(1).values, x[..., 0].sort(1).values)  # a permutation of pixels


def test_mnist_validation_is_carved_by_the_split_seed(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "IDX", fixtures.write_mnist(tmp_path))
    a, b = make("smnist", tmp_path, n_val=10), make("smnist", tmp_path, n_val=10, split_seed=3)
    assert not torch.equal(a.splits["val"].tensors["x"], b.splits["val"].tensors["x"])
    train_and_val = torch.cat([a.splits["train"].tensors["y"], a.splits["val"].tensors["y"]])
    assert sorted(train_and_val.tolist()) == sorted([i % 10 for i in range(60)])


def test_sst2_binary_sentences_and_sampled_phrases(tmp_path, monkeypatch):
    monkeypatch.setattr(sst, "ROOT_COUNTS", fixtures.write_sst(tmp_path))
    task = make("sst2", tmp_path, train_subtrees=2)
    assert task.split_sizes() == {"train": 4, "val": 2, "test": 2}
    assert task.splits["train"].tensors["y"].tolist() == [1, 0, 1, 0]
    assert "great" in task.vocab and "superb" in task.vocab
    task.batch_size = 4
    batch = next(iter(task.train_dataloader()))
    assert len(batch["y"]) == 4 + 4 * 2  # each sentence plus two of its labelled phrases
    assert torch.all(batch["lengths"] >= 1) and batch["x"].shape[1] == batch["lengths"].max()


def test_sst2_phrase_labels_are_binary_and_non_neutral(tmp_path, monkeypatch):
    monkeypatch.setattr(sst, "ROOT_COUNTS", fixtures.write_sst(tmp_path))
    words, nodes = sst.parse_tree(fixtures.SST_TREES["train.txt"][0], "line 1")
    assert words == ["a", "great", "film"] and nodes[-1] == (3, 0, 3)
    data = sst.build_from_trees(sst.read_trees(tmp_path))
    assert data["train"]["phrases"][0] == [(1, 1, 2), (1, 1, 3)]


def test_imdb_reviews_truncated_to_their_last_tokens(tmp_path, monkeypatch):
    fixtures.write_imdb(tmp_path)
    monkeypatch.setattr(imdb, "PER_FOLDER", 6)
    task = make("imdb", tmp_path, n_val=2, max_len=5, vocab_size=50)
    assert task.split_sizes() == {"train": 10, "val": 2, "test": 12}
    assert "<br" not in task.vocab and "wonderful" in task.vocab
    lengths = task.splits["test"].tensors["lengths"]
    assert lengths.max() == 5
    assert imdb.tokenize("A film<br />LOVED it's") == ["a", "film", "loved", "it's"]


def test_imdb_cache_follows_the_review_files_content(tmp_path, monkeypatch):
    """The processed IMDB entry is keyed by every review's content, not the folder's path:
    a review changed after the first build is read again (and a damaged one checked)."""
    fixtures.write_imdb(tmp_path)
    monkeypatch.setattr(imdb, "PER_FOLDER", 6)
    first = make("imdb", tmp_path, n_val=2, max_len=50, vocab_size=50)
    assert "zebra" not in first.vocab
    review = tmp_path / "aclImdb" / "train" / "pos" / "0_9.txt"
    review.write_text("zebra " * 20)
    again = make("imdb", tmp_path, n_val=2, max_len=50, vocab_size=50)
    assert "zebra" in again.vocab
