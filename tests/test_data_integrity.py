"""Bad data gets a one-line error naming the file and what was expected, and leaves no cache."""

from __future__ import annotations

import gzip
import time

import pytest

import fixtures
from helpers import task_instance
from regbench.tasks import imdb, mnist, ptb, sst
from regbench.tasks.cache import cached
from regbench.tasks.sources import DataError


def build(name, root, **params):
    task_instance(name, root, batch_size=2, **params).prepare_data()


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.fixture
def ptb_root(tmp_path, monkeypatch):
    monkeypatch.setattr(ptb, "WORD_MD5", fixtures.write_ptb(tmp_path))
    monkeypatch.setattr(ptb, "CHAR_GIT_SHA1", fixtures.write_ptb_char(tmp_path))
    return tmp_path


def test_corrupted_text_file_is_named_with_its_expected_hash(ptb_root):
    path = ptb_root / "ptb" / "ptb.valid.txt"
    data = bytearray(path.read_bytes())
    data[3] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        build("ptb_word", ptb_root)
    message = one_line(err)
    assert str(path) in message and "md5" in message and ptb.WORD_MD5["val"][:12] in message


def test_missing_file_says_what_to_get(ptb_root):
    (ptb_root / "ptb" / "ptb.test.txt").unlink()
    with pytest.raises(DataError, match=r"ptb\.test\.txt: missing PTB test file") as err:
        build("ptb_word", ptb_root)
    one_line(err)


def test_truncated_gzip_is_reported(ptb_root):
    path = ptb_root / "ptb_char" / "ptb.char.train.txt.gz"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match="not a complete gzip file") as err:
        build("ptb_char", ptb_root)
    assert str(path) in one_line(err)


def test_wrong_format_mnist_file_is_reported_by_its_magic(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "IDX", fixtures.write_mnist(tmp_path))
    folder = tmp_path / "mnist"
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        (folder / "t10k-labels-idx1-ubyte.gz").read_bytes()
    )
    with pytest.raises(DataError, match="IDX magic 2049 is not 2051") as err:
        build("smnist", tmp_path, n_val=10)
    one_line(err)


def test_corrupted_mnist_content_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist, "IDX", fixtures.write_mnist(tmp_path))
    path = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[-1] ^= 7
    path.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match="sha256") as err:
        build("smnist", tmp_path, n_val=10)
    assert str(path) in one_line(err)


def test_truncated_treebank_and_malformed_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(sst, "ROOT_COUNTS", fixtures.write_sst(tmp_path))
    path = tmp_path / "sst" / "trees" / "dev.txt"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=r"dev\.txt: root labels .* expected") as err:
        build("sst2", tmp_path)
    one_line(err)
    path.write_text("\n".join([*lines[:-1], "(1 (1 bad) (2 film)"]) + "\n")
    with pytest.raises(DataError, match=r"dev\.txt:3: not a complete labelled tree"):
        build("sst2", tmp_path)


def test_imdb_review_with_an_inconsistent_rating_and_an_incomplete_folder(tmp_path, monkeypatch):
    fixtures.write_imdb(tmp_path)
    with pytest.raises(DataError, match=r"neg: 6 reviews, expected 12,500"):
        build("imdb", tmp_path)
    monkeypatch.setattr(imdb, "PER_FOLDER", 6)
    bad = tmp_path / "aclImdb" / "train" / "pos" / "99_2.txt"
    bad.write_text("mislabelled")
    with pytest.raises(DataError, match=r"99_2\.txt: not an aclImdb pos review"):
        build("imdb", tmp_path)


def test_a_failed_build_leaves_no_cache_file(tmp_path, monkeypatch):
    monkeypatch.setenv("REGBENCH_CACHE", str(tmp_path / "cache"))

    def failing():
        raise DataError("boom")

    with pytest.raises(DataError):
        cached("t", 1, "key", failing)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert cached("t", 1, "key", lambda: {"a": 1}) == {"a": 1}
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["t-v1-key.pt"]


def test_offline_without_local_data_fails_at_once_with_instructions(monkeypatch):
    monkeypatch.delenv("REGBENCH_DATA", raising=False)
    started = time.perf_counter()
    with pytest.raises(DataError) as err:
        build("ptb_word", None)
    message = one_line(err)
    assert "--data-dir" in message and "REGBENCH_DATA" in message
    assert time.perf_counter() - started < 10
