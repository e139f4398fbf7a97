"""Batches made ahead in a background thread (sequnet.data.prefetch) and the raw-audio task that uses them on a
GPU: the same items in the same order, errors where they happened, a thread that stops, and the same random draws
as without it."""
from __future__ import annotations

import threading

import pytest
import torch

from sequnet.core.configs import paper_setting
from sequnet.data.audio import AudioCorpus
from sequnet.data.prefetch import Prefetched, on_device
from sequnet.experiment.tasks import AudioTask


def test_items_come_in_order_and_the_end_ends():
    with Prefetched(range(10), depth=3) as items:
        assert list(items) == list(range(10))
        assert next(items, "end") == "end"
    with pytest.raises(ValueError, match="depth=0"):
        Prefetched([], depth=0)


def test_an_error_is_raised_where_it_happened():
    def items():
        yield from (1, 2)
        raise KeyError("piece 3 is missing")

    got = []
    with pytest.raises(KeyError, match="piece 3"), Prefetched(items()) as made:
        for x in made:
            got.append(x)
    assert got == [1, 2]


def test_closing_stops_the_thread_of_an_endless_stream():
    made = []

    def endless():
        n = 0
        while True:
            made.append(n)
            yield n
            n += 1

    before = threading.active_count()
    items = Prefetched(endless(), depth=2)
    assert [next(items) for _ in range(5)] == list(range(5))
    items.close()
    assert threading.active_count() == before
    assert len(made) <= 5 + 2 + 1          # what was taken, what waited, and the one being put
    assert next(items, "closed") == "closed"


def test_on_device_is_the_same_with_and_without_the_thread():
    batches = [(torch.full((2, 3), k), torch.arange(k)) for k in range(4)]
    plain = list(on_device(iter(batches), torch.device("cpu"), ahead=False))
    ahead = list(on_device(iter(batches), torch.device("cpu"), ahead=True))
    for a, b in zip(plain, ahead, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x, y)


@pytest.fixture(scope="module")
def corpus():
    g = torch.Generator().manual_seed(0)
    train = {f"p{i}": torch.randint(0, 256, (16000 * (5 + i),), dtype=torch.uint8, generator=g) for i in range(3)}
    return AudioCorpus(16000, train, {"t": torch.randint(0, 256, (16000 * 4,), dtype=torch.uint8, generator=g)})


def test_the_audio_task_cuts_the_same_batches_and_draws_alike_ahead(corpus):
    setting = paper_setting("piano_audio", "sequnet")
    runs = {}
    for ahead in (False, True):
        task = AudioTask(setting, corpus, batch_size=2)
        task.prefetch = ahead
        order = torch.Generator().manual_seed(7)
        batches = task.train_batches(order)
        runs[ahead] = ([next(batches) for _ in range(5)], order.get_state(),
                       list(task.eval_batches("test", 3)))
        batches.close()
    (train0, state0, eval0), (train1, state1, eval1) = runs[False], runs[True]
    assert torch.equal(state0, state1)       # one draw from the run's generator, however far the thread got
    assert 2 * len(train0) > len(task.excerpts)       # into a second round of the dataset's items
    for a, b in zip(train0 + eval0, train1 + eval1, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert train0[0][0].shape == (2, setting.input_output[0]) and train0[0][0].dtype == torch.int64
