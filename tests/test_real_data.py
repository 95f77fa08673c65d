"""Real data smoke tests: every real task on the verified copies in ../shared/data.

They run when $REGBENCH_REAL_DATA (or, by default, ../shared/data beside the checkout) holds
the files, and check the published split sizes and vocabularies, then train a few batches.
"""

from __future__ import annotations

import pytest
import torch

from real_data import DEFAULT, REAL_DATA, SKIP_REASON
from regbench.models import SequenceModel
from regbench.plan.config import resolve
from regbench.run.train import build_task
from regbench.tasks import get_task, imdb

ROOT = REAL_DATA or DEFAULT
pytestmark = [
    pytest.mark.filterwarnings("ignore:You are trying to `self.log"),
    pytest.mark.skipif(REAL_DATA is None, reason=SKIP_REASON),
]


def real_task(name: str, **overrides):
    config = resolve(name, "none", "lstm", 0, overrides)
    task = build_task(config, str(ROOT))
    task.setup()
    return config, task


def a_few_batches(config, task, n: int = 2) -> None:
    protocol = get_task(config["task"]["name"]).protocol
    model = SequenceModel(config, task.input_spec(), protocol)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for i, batch in enumerate(task.train_dataloader()):
        if i == n:
            break
        loss = model.training_step(batch, i)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss)


def test_ptb_word_published_sizes_and_vocabulary():
    config, task = real_task("ptb_word", **{"model.hidden_size": 16, "model.embedding_size": 16})
    assert task.split_sizes() == {"train": 929_589, "val": 73_760, "test": 82_430}
    assert len(task.vocab) == 10_000 and "<unk>" in task.vocab
    a_few_batches(config, task)


def test_ptb_char_fifty_symbols():
    config, task = real_task("ptb_char", **{"model.hidden_size": 16})
    assert len(task.vocab) == 50 and "_" in task.vocab
    sizes = task.split_sizes()
    assert 5_000_000 < sizes["train"] < 5_200_000 and 390_000 < sizes["val"] < 450_000
    a_few_batches(config, task)


@pytest.mark.parametrize("name", ["smnist", "pmnist"])
def test_mnist_sixty_and_ten_thousand(name):
    config, task = real_task(name, **{"model.hidden_size": 8, "train.batch_size": 16})
    assert task.split_sizes() == {"train": 55_000, "val": 5_000, "test": 10_000}
    assert task.splits["test"].tensors["y"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    a_few_batches(config, task, n=1)


def test_sst2_published_sentence_counts():
    config, task = real_task("sst2", **{"model.hidden_size": 16, "model.embedding_size": 16})
    assert task.split_sizes() == {"train": 6_920, "val": 872, "test": 1_821}
    a_few_batches(config, task)


def test_imdb_reader_on_the_real_sample():
    texts, labels = imdb.read_folder(ROOT / "imdb_sample", "train", require_full=False)
    assert len(texts) == len(labels) > 10 and set(labels) == {0, 1}
    tokens = imdb.tokenize(texts[0])
    assert tokens and "<br" not in tokens
