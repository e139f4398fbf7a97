"""Shared fixtures. Tests never download: data comes from a local mirror (a copy of shared/data) into a
temporary data root, so nothing is written into the repository either."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import xdist_order

REPO = Path(__file__).resolve().parents[1]


@pytest.hookimpl(trylast=True)     # after -m and -k have deselected: xdist splits what is left
def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist, the tests that an earlier GPU suite's log (SEQUNET_TEST_DURATIONS, which
    benchmarks/gpu_test.sh sets) found long lead the workers' first blocks (tests/xdist_order.py). Every worker
    reorders alike, as xdist requires."""
    log, workers = os.environ.get("SEQUNET_TEST_DURATIONS"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if log and workers > 1:
        known = xdist_order.read_durations(log)
        items[:] = xdist_order.long_first(items, workers, lambda item: known.get(item.nodeid))


def _mirror() -> Path:
    env = os.environ.get("SEQUNET_DATA_MIRROR")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session", autouse=True)
def _offline_data(tmp_path_factory):
    """Point the default data root at a temporary folder and the mirror at shared/data for every test: a loader
    called without arguments then copies from the mirror (or fails with DataError) instead of downloading."""
    mirror = _mirror()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SEQUNET_DATA", str(tmp_path_factory.mktemp("data-root")))
        mp.setenv("SEQUNET_DATA_MIRROR", str(mirror if mirror.is_dir() else tmp_path_factory.mktemp("no-mirror")))
        yield


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    mirror = _mirror()
    if not (mirror / "MANIFEST.md").is_file():
        pytest.skip(f"no data mirror at {mirror}: set SEQUNET_DATA_MIRROR to a copy of shared/data")
    return mirror


@pytest.fixture(scope="session")
def data_root(_offline_data, data_mirror) -> Path:
    """The session's data root (files are copied into it from the mirror on first use)."""
    return Path(os.environ["SEQUNET_DATA"])


@pytest.fixture
def exact_float32():
    """Full float32 convolutions and matrix products (no TF32), restored afterwards.

    Plain assignment, not ``monkeypatch.setattr``: ``torch.backends.cuda.matmul`` is an object whose attributes
    are properties, and on an H200 (torch 2.11, pytest 9.2) monkeypatch's teardown failed with "'cuBLASModule'
    object has no attribute 'allow_tf32'"."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def default_tf32():
    """The trainer's numerics: TF32 convolutions on (PyTorch's default), TF32 matrix products off."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def matmul_precision_calls(monkeypatch):
    """The float32 matmul precisions set during the test, in order (``torch.set_float32_matmul_precision`` still
    sets them): setting it at all, even to its own value, changes torch's state. The precision before the test
    comes back after it."""
    before, setter, calls = torch.get_float32_matmul_precision(), torch.set_float32_matmul_precision, []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", lambda p: (calls.append(p), setter(p)))
    yield calls
    setter(before)


@pytest.fixture
def one_cpu_thread():
    """One torch thread for the test: step-wise generation is many tiny operations, and on a busy 2-core machine
    one thread is many times faster than two that wait for each other (see sequnet.experiment.scales)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
