"""Items of an iterator made ahead in a background thread.

The raw-audio batches are cut on the CPU (sixteen excerpts of ~37k samples each, about 1 ms on one core) and
copied to the GPU (4.8 MB of int64 ids; from pageable memory the copy blocks the CPU). Made between two training
steps, both leave the GPU idle, a few ms of a 44 ms Seq-U-Net step. Made in a thread while the GPU runs the
previous step and copied from pinned memory, they cost the step nearly nothing: numpy and torch release the GIL
in their copies, and the step's own CPU work is a graph launch and a wait. (The rest of the trainer's cost around
the step, each epoch's eager warm-up steps and graph capture, is measured by benchmarks/trainer_loop.py.)
"""
from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, TypeVar

import torch

T = TypeVar("T")
_END = object()


class Prefetched(Iterator[T]):
    """Iterate over ``iterable`` with up to ``depth`` items made ahead by one background thread, in order.

    Only that thread advances ``iterable`` (so a random generator it draws from sees the same calls in the same
    order as without prefetching). An exception raised there is raised here, at the item where it happened.
    ``close()`` (or leaving a ``with`` block) stops the thread and waits for it; items made ahead are dropped.
    """

    def __init__(self, iterable: Iterable[T], depth: int = 2):
        if depth < 1:
            raise ValueError(f"depth={depth!r}: expected at least 1 item made ahead")
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._fill, args=(iter(iterable),), name="prefetch", daemon=True)
        self._thread.start()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as e:        # noqa: BLE001 - handed to the consumer, which raises it
            self._put((_END, e))

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item, error = self._queue.get()
        if item is _END:
            self._done = True
            self._thread.join()
            if error is not None:
                raise error
            raise StopIteration
        return item

    def close(self) -> None:
        self._stop.set()
        self._done = True
        self._thread.join()

    def __enter__(self) -> "Prefetched[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def on_device(batches: Iterable[tuple[torch.Tensor, ...]], device: torch.device, *, ahead: bool
              ) -> Iterator[tuple[torch.Tensor, ...]]:
    """``batches`` (tuples of CPU tensors) moved to ``device``; with ``ahead``, made in a background thread
    (``Prefetched``, two ahead) and copied without waiting (pinned tensors need not wait for the CPU)."""
    if not ahead:
        for batch in batches:
            yield tuple(t.to(device) for t in batch)
        return
    with Prefetched(batches, depth=2) as made:
        for batch in made:
            yield tuple(t.to(device, non_blocking=True) for t in batch)
