"""Choosing the products of a cached state (``kernel=``) and timing the candidates (``fastest_kernel``), on the
CPU side: the names are checked, a Triton kernel asked for where Triton cannot run is a clear error, and the
timing costs nothing where there is nothing to choose. The GPU side (every kernel exact against the full
forward, the trial picking one of the candidates) is in ``test_generation_cuda.py``."""
from __future__ import annotations

import pytest
import torch

from sequnet.core.generation import generate, init_state, kernels, minimal_window
from sequnet.core.generation.tuning import fastest_kernel
from test_generation import residual, tcn, wavenet


@pytest.mark.parametrize("make", [lambda: residual(3, 3, 2), lambda: wavenet()], ids=["sequnet", "wavenet"])
def test_pinned_torch_kernel_is_the_cpu_default(make):
    """On a CPU "auto" means the torch products; pinning them gives the same logits, bit for bit."""
    torch.manual_seed(0)
    model = make().eval()
    prime = torch.randint(0, 5, (2, minimal_window(model) + 2))
    auto, pinned = init_state(model, prime), init_state(model, prime, kernel="torch")
    assert auto.kernel == pinned.kernel == "torch"
    assert (auto.fused, auto.gemv, auto.rowdot) == (False, False, False)
    for s in range(6):
        ids = torch.tensor([s % 5, (s + 2) % 5])
        assert torch.equal(auto.step(ids), pinned.step(ids))


@pytest.mark.parametrize("kernel", ["rowdot", "splitk", "cublas"])
def test_a_triton_kernel_where_triton_cannot_run_says_why(kernel):
    model = wavenet().eval()
    prime = torch.randint(0, 5, (1, minimal_window(model)))
    with pytest.raises(ValueError, match=rf"kernel='{kernel}' runs Triton kernels.*cpu.*use kernel='auto'"):
        init_state(model, prime, kernel=kernel)
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        kernels.kernel_switches(kernel, torch.device("cuda"), torch.float64, 1)


def test_unknown_kernel_and_too_large_batch_are_named():
    model = wavenet().eval()
    prime = torch.randint(0, 5, (1, minimal_window(model)))
    with pytest.raises(ValueError, match=r"kernel='fast': expected 'auto' or one of 'rowdot', 'splitk'"):
        generate(model, prime, 4, kernel="fast", progress=False)
    if kernels.triton is not None:
        for kernel in ("splitk", "rowdot"):     # rowdot takes larger batches in blocks, as far as split-K goes
            with pytest.raises(ValueError, match=rf"kernel='{kernel}' takes a batch of at most "
                                                 rf"{kernels.GEMV_MAX_BATCH}, got 65"):
                kernels.kernel_switches(kernel, torch.device("cuda"), torch.float32, 65)


def test_a_tcn_takes_no_kernel():
    model = tcn().eval()
    prime = torch.randint(0, 11, (1, minimal_window(model)))
    assert init_state(model, prime, kernel="auto").logits.shape == (1, 11)
    with pytest.raises(ValueError, match="a TCN has no cached state"):
        init_state(model, prime, kernel="torch")


def test_fastest_kernel_on_a_cpu_leaves_the_choice_to_the_state():
    model = wavenet().eval()
    prime = torch.randint(0, 5, (3, minimal_window(model)))
    assert fastest_kernel(model, prime) == ("auto", {})
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        fastest_kernel(model, prime, steps=0)
    with pytest.raises(ValueError, match="candidates=.*expected some of.*'chain' for WaveNet"):
        fastest_kernel(model, prime, candidates=("rowdot", "fastest"))
    assert fastest_kernel(model, prime, candidates=("splitk", "chain")) == ("auto", {})


def test_the_chain_kernel_is_wavenets_and_needs_triton(monkeypatch):
    """``kernel="chain"`` (WaveNet's dilated layers in one launch): refused for a Seq-U-Net with the reason, and
    where Triton cannot run with what is missing; wider layers than its register tiles hold are named too."""
    from sequnet.core.generation import wavenet_chain
    seq = residual(3, 3, 2).eval()
    with pytest.raises(ValueError, match=r"kernel='chain': expected .*'chain' runs WaveNet's layers only"):
        init_state(seq, torch.randint(0, 5, (1, minimal_window(seq))), kernel="chain")
    model = wavenet().eval()
    with pytest.raises(ValueError, match=r"kernel='chain' cannot run here: it is a Triton kernel.*cpu.*'auto'"):
        init_state(model, torch.randint(0, 5, (1, minimal_window(model))), kernel="chain")
    monkeypatch.setattr(kernels, "use_triton", lambda device, dtype: True)     # as on a GPU machine
    assert wavenet_chain.chain_problem(torch.device("cuda"), torch.float32, 128) is None
    assert "at most 128" in wavenet_chain.chain_problem(torch.device("cuda"), torch.float32, 256)
