"""The generation kernels' arithmetic checked without a GPU, in Triton's CPU interpreter (opt-in: skipped unless
``TRITON_INTERPRET=1`` and Triton is importable, which the CPU environment does not install):

    pip install --no-deps --target /tmp/triton-site triton==3.6.0
    PYTHONPATH=/tmp/triton-site TRITON_INTERPRET=1 python -m pytest tests/test_kernels_interpreted.py
    # 104 tests in 17 min 53 s with 2 pytest-xdist workers on a 2-core machine (2026-12-07)

The interpreter runs each kernel's program logic on CPU tensors with NumPy, so a wrong index, mask or stride
shows here; launch limits (registers, shared memory) and speed do not. The same checks on a GPU are in
``test_generation_cuda.py``."""
from __future__ import annotations

import copy
import os

import pytest
import torch
import torch.nn as nn

from sequnet.core.generation import init_state, kernels, minimal_window
from sequnet.core.models import id_lookup, use_channels_last, use_fused_lookup, use_mm_weight_grad, weight_grad
from sequnet.core.models.layers import Conv1d, ConvTranspose1d, OneHotModel, input_conv, to_channels_last
from sequnet.core.models.wavenet import WaveNet, WaveNetConfig
from test_generation import chunk_run_eagerly, greedy_agrees_with_forward, residual, wavenet

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1" or kernels.triton is None,
                                reason="needs Triton and TRITON_INTERPRET=1 (see the module docstring)")


@pytest.fixture
def triton_on_cpu(monkeypatch):
    """Let the states take their Triton paths on CPU tensors (the interpreter runs them)."""
    monkeypatch.setattr(kernels, "use_triton", lambda device, dtype: dtype in (torch.float32, torch.bfloat16))


@pytest.mark.parametrize("batch", [1, 3, 8, 20, 64])     # above 8 the fused kernel multiplies on the tensor cores
@pytest.mark.parametrize("c, k, kind, rows, parts, identity", [
    (128, 128, "gate", 1, 2, True),      # the paper WaveNet's dilated layer: x_{t-d} W0 + x_t W1, residual added
    (128, 129, "none", 1, 1, True),      # its residual 1x1 with the bias row folded in
    (180, 900, "gate", 1, 1, False),     # a Seq-U-Net level: kernel 5 x 180 channels
    (180, 360, "leaky", 2, 1, False)],   # a transposed layer's two fine samples
    ids=["wavenet-dilated", "wavenet-residual", "sequnet-level", "sequnet-up"])
def test_fused_and_split_k_products_equal_torch(triton_on_cpu, batch, c, k, kind, rows, parts, identity):
    torch.manual_seed(batch)
    n = (2 * c if kind == "gate" else c) * rows
    xs = [torch.randn(batch, k) for _ in range(parts)]
    ws = [torch.randn(k, n) / k ** 0.5 for _ in range(parts)]
    bias = torch.randn(2 * c if kind == "gate" else c)
    ident = torch.randn(batch, 1, c) if identity else None
    expected = torch.empty(batch, rows, c)
    kernels.activate_torch(kind, sum(x @ w for x, w in zip(xs, ws)).view(batch, rows, -1), bias, ident, expected)
    fused = torch.empty(batch, rows, c)
    kernels.rowdot_triton([(x, w.t().contiguous()) for x, w in zip(xs, ws)], bias, kind, ident, fused)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)
    if rows == 1:
        ops, part = kernels.matmul(list(zip(xs, ws)), None, gemv=True)
        for op in ops:
            op()
        split = torch.empty(batch, 1, c)
        kernels.activate_triton(kind, part.view(*part.shape[:-1], 1, -1), bias, ident, split)
        torch.testing.assert_close(split, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("least", [16, 32, 128])      # 8, 4 and 1 columns a program for 180 outputs (64: 2)
@pytest.mark.parametrize("kind, rows", [("gate", 1), ("leaky", 2)])
def test_rowdot_equals_torch_at_other_programs(monkeypatch, triton_on_cpu, least, kind, rows):
    """rowdot's element-wise tile at the least numbers of programs benchmarks/generation.py --rowdot-programs
    times: a Seq-U-Net level's gated layer and a transposed layer's two samples at batch 1, with a residual."""
    monkeypatch.setattr(kernels, "ROWDOT_PROGRAMS", least)
    torch.manual_seed(least)
    c, k = 180, 900
    n = (2 * c if kind == "gate" else c) * rows
    x, w, bias = torch.randn(1, k), torch.randn(k, n) / k ** 0.5, torch.randn(2 * c if kind == "gate" else c)
    ident = torch.randn(1, 1, c)
    expected, fused = torch.empty(1, rows, c), torch.empty(1, rows, c)
    kernels.activate_torch(kind, (x @ w).view(1, rows, -1), bias, ident, expected)
    kernels.rowdot_triton([(x, w.t().contiguous())], bias, kind, ident, fused)
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("tile", ["32x64", "128x64", "64x32", "64x128", "rule"])
@pytest.mark.parametrize("batch", [6, 20])       # products element-wise in float32, and on the tensor cores
def test_split_k_products_equal_torch_at_other_tiles(monkeypatch, batch, tile):
    """The split-K products at the tiles benchmarks/generation.py --splitk-tiles times (rows of W and output
    columns a program, or each product's by the rule), two input parts with a part's rows not a multiple of the
    tile: the partial sums add up to the product, and there is one partial per chunk of rows. A tile changed
    between the partial sums' allocation and the launch is refused, not run with too few or too many splits."""
    from sequnet.core.generation import splitk
    from test_benchmarks import benchmark_module

    monkeypatch.setattr(splitk, "TILE", benchmark_module("generation").splitk_tile(tile))
    torch.manual_seed(batch)
    xs = [torch.randn(batch, 300), torch.randn(batch, 70)]
    ws = [torch.randn(300, 200) / 20, torch.randn(70, 200) / 20]
    ops, part = kernels.matmul(list(zip(xs, ws)), None, gemv=True)
    for op in ops:
        op()
    chosen = splitk.tile_for(list(zip(xs, ws)))
    if tile == "rule":   # (64, 32) on the tensor cores (7 x 7 programs), element-wise (64, 64) (7 x 4, its most)
        assert chosen == ((64, 32) if batch > 8 else (64, 64))
    rows = chosen[0]
    assert rows == (64 if tile == "rule" else int(tile.partition("x")[0]))
    assert part.shape[0] == -(-300 // rows) + -(-70 // rows)
    torch.testing.assert_close(part.sum(0), xs[0] @ ws[0] + xs[1] @ ws[1], rtol=1e-5, atol=1e-5)
    monkeypatch.setattr(splitk, "TILE", (256 if rows != 256 else 128, 64))
    with pytest.raises(RuntimeError, match="set splitk.TILE before the state is built"):
        ops[0]()


@pytest.mark.parametrize("make", [lambda: residual(4, 5, 2, classes=256, features=16),
                                  lambda: wavenet(classes=256)], ids=["sequnet", "wavenet"])
@pytest.mark.parametrize("batch", [8, 20])       # the fused kernel's two tilings: the whole batch, blocks of 16
def test_every_kernel_state_agrees_and_greedy_is_exact(triton_on_cpu, make, batch):
    """Whole states pinned to each kernel, teacher-forced on the same ids, against the torch products; then
    greedy decoding with the fused kernel against the model's float64 full forward."""
    torch.manual_seed(2)
    model = make().eval()
    p = minimal_window(model) + 3
    ids = torch.randint(0, 256, (batch, p + 12))
    states = {name: init_state(model, ids[:, :p], kernel=name) for name in kernels.KERNELS}
    assert {name: s.kernel for name, s in states.items()} == {name: name for name in kernels.KERNELS}
    for s in range(12):
        out = {name: st.step(ids[:, p + s]) for name, st in states.items()}
        for name in out:
            torch.testing.assert_close(out[name], out["torch"], rtol=1e-5, atol=1e-5)
    n = 2 * 16 + 3
    generated = init_state(model, ids[:, :p], kernel="rowdot").generate(n, greedy=True, progress=False)
    checked = greedy_agrees_with_forward(model, torch.cat([ids[:, :p], generated], 1), p, n)
    assert checked >= n


@pytest.mark.parametrize("step_kernels", ["1", "0"], ids=["step-kernels", "torch-bookkeeping"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("make", [lambda: residual(4, 5, 2, classes=256, features=16),
                                  lambda: wavenet(classes=256)], ids=["sequnet", "wavenet"])
def test_triton_steps_are_layers_and_one_launch_each_for_start_end_and_sampling(triton_on_cpu, monkeypatch, make,
                                                                                batch, step_kernels):
    """On the Triton path a step's bookkeeping is one launch at its start (a Seq-U-Net's window shifts and input
    layer; WaveNet's x_0 and clock) and one at WaveNet's end (the ring write and the next step's reads); the head's
    kernel samples and records the id in a multi-step graph: run eagerly, those operations give what the torch
    path's generation gives step by step, greedy and sampled. With SEQUNET_STEP_KERNELS=0 the bookkeeping is torch
    operations again (the Seq-U-Net's input layer still one launch, sampling its own), with the same results: the
    same ids, and the same logits and carried tensors bit for bit."""
    monkeypatch.setenv("SEQUNET_STEP_KERNELS", step_kernels)
    torch.manual_seed(batch)
    model = make().eval()
    prime = torch.randint(0, 256, (batch, minimal_window(model)))
    state = init_state(model, prime)
    assert state.kernel == ("rowdot" if batch <= kernels.ROWDOT_MAX_BATCH else "splitk")
    assert state.step_fused == (step_kernels == "1")
    wave = isinstance(model.body, WaveNet)
    for key in state.keys():
        ops = state.ops(key)
        products = [op for op in ops if op.func is kernels.rowdot_triton]
        if state.step_fused:
            assert len(ops) == 1 + len(products) + wave
            assert ops[0].func.__module__ == "sequnet.core.generation.step_kernels"
        else:       # WaveNet: clock and rows (4), two gathers, the ring write; Seq-U-Net: the shifts, the input
            shifts = 0 if wave else sum(len(state.win.shift_ops(i, p))
                                        for i, p in enumerate(state._parities(key)[:key[0] + 1]))
            assert len(ops) == len(products) + (7 if wave else shifts + 1)
        sampled = state._sampled_ops(key, False, record=state.cur_id)
        if state.step_fused:        # the head's kernel samples and records too
            assert len(sampled) == len(ops) and sampled[-1].func is kernels.rowdot_triton
            *_, sample, _, next_start = sampled[-1].args
            assert sample is not None and next_start is None and sampled[:-1] == ops[:-1]
        else:                       # the sampling kernel, then the record's copy
            assert len(sampled) == len(ops) + 2
    plain = init_state(model, prime, kernel="torch")
    assert torch.equal(chunk_run_eagerly(model, prime), plain.generate(17, greedy=True, progress=False))
    plain = init_state(model, prime, kernel="torch")
    ids, run = chunk_run_eagerly(model, prime, temperature=0.9, with_state=True)
    assert torch.equal(ids, plain.generate(17, temperature=0.9, progress=False,
                                           generator=torch.Generator().manual_seed(5)))
    if state.step_fused:    # ids alone can hide a wrong window: a small model's samples hardly depend on them
        monkeypatch.setenv("SEQUNET_STEP_KERNELS", "0")
        _, torch_run = chunk_run_eagerly(model, prime, temperature=0.9, with_state=True)
        for a, b in zip(_carried(run), _carried(torch_run)):
            assert torch.equal(a, b)


def _carried(state) -> list[torch.Tensor]:
    """What a state carries from step to step, and its logits, but WaveNet's x_{t-d}: the torch bookkeeping reads
    them at a step's start, the step kernels at the end of the step before."""
    return [t for t in state._persistent() if t is not getattr(state, "_old", None)] + [state.logits]


@pytest.mark.parametrize("make", [lambda: residual(4, 5, 2, classes=256, features=16),
                                  lambda: wavenet(classes=256)], ids=["sequnet", "wavenet"])
def test_the_split_k_heads_activation_samples_as_the_sampling_kernel_would(triton_on_cpu, monkeypatch, make):
    """Above batch 4 the head is a split-K product and an activation; the activation samples each sequence's next
    id from the logits it wrote, one program per sequence: the same ids as the torch path, greedy and sampled, and
    the same logits and carried tensors, bit for bit, as with the sampling kernel after the activation
    (SEQUNET_STEP_KERNELS=0)."""
    monkeypatch.setenv("SEQUNET_STEP_KERNELS", "1")
    torch.manual_seed(6)
    model = make().eval()
    prime = torch.randint(0, 256, (6, minimal_window(model)))
    state = init_state(model, prime)
    assert state.kernel == "splitk"
    key = state.keys()[0]
    sampled = state._sampled_ops(key, True, record=state.cur_id)
    assert len(sampled) == len(state.ops(key)) and sampled[-1].func is kernels.activate_triton
    assert torch.equal(chunk_run_eagerly(model, prime),
                       init_state(model, prime, kernel="torch").generate(17, greedy=True, progress=False))
    ids, run = chunk_run_eagerly(model, prime, temperature=0.9, with_state=True)
    assert torch.equal(ids, init_state(model, prime, kernel="torch").generate(
        17, temperature=0.9, progress=False, generator=torch.Generator().manual_seed(5)))
    monkeypatch.setenv("SEQUNET_STEP_KERNELS", "0")     # ids alone can hide wrong logits or windows
    _, apart = chunk_run_eagerly(model, prime, temperature=0.9, with_state=True)
    assert apart.kernel == "splitk" and not apart.step_fused
    for a, b in zip(_carried(run), _carried(apart)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("batch", [1, 6])      # the head: rowdot's last program, or split-K's activation
@pytest.mark.parametrize("make", [lambda: residual(4, 5, 2, classes=256, features=16),
                                  lambda: wavenet(classes=256)], ids=["sequnet", "wavenet"])
def test_a_start_run_by_the_head_before_it_samples_the_same_ids(triton_on_cpu, monkeypatch, make, batch):
    """With SEQUNET_START_IN_HEAD=1 every step of a multi-step graph but its first has its start (a Seq-U-Net's
    shifts and input layer, WaveNet's x_0 and clock) run by the head kernel of the step before: one operation fewer
    each; over two graphs in a row the ids the torch path samples, and the same logits and carried tensors (windows,
    partial sums, ring, clock) as the start's own launch, bit for bit."""
    monkeypatch.setenv("SEQUNET_START_IN_HEAD", "1")
    torch.manual_seed(batch)
    model = make().eval()
    prime = torch.randint(0, 256, (batch, minimal_window(model)))
    state = init_state(model, prime)
    assert state.start_in_head and state._folds_start()
    keys = state._keys_ahead(state.CHUNK)
    state._chunk_ids = torch.zeros(batch, state.CHUNK, dtype=torch.long)
    state._chunk_noise = torch.zeros(state.CHUNK, *state._noise.shape)
    ops = state._chunk_ops(keys, False)
    assert len(ops) == sum(len(state.ops(key)) for key in keys) - (state.CHUNK - 1)
    heads = [op for op in ops if op.func in (kernels.rowdot_triton, kernels.activate_triton)
             and isinstance(op.args[-1], tuple)]             # a head given the next step's start
    assert len(heads) == state.CHUNK - 1
    assert state.ops_per_step() == pytest.approx(
        sum(len(state._sampled_ops(key, False, record=state.cur_id)) for key in state._keys_ahead(state.period))
        / state.period - (state.CHUNK - 1) / state.CHUNK)
    expected = init_state(model, prime, kernel="torch").generate(
        2 * state.CHUNK + 1, temperature=0.9, progress=False, generator=torch.Generator().manual_seed(5))
    ids, folded = chunk_run_eagerly(model, prime, temperature=0.9, chunks=2, with_state=True)
    assert torch.equal(ids, expected)
    monkeypatch.setenv("SEQUNET_START_IN_HEAD", "0")
    ids, own = chunk_run_eagerly(model, prime, temperature=0.9, chunks=2, with_state=True)
    assert not own._folds_start() and torch.equal(ids, expected)
    for a, b in zip(own._persistent() + [own.logits], folded._persistent() + [folded.logits]):
        assert torch.equal(a, b)


def wide_wavenet():
    """Three layers at the paper's 128 residual channels: the chain kernel's whole register tile, no mask."""
    return OneHotModel(WaveNet(WaveNetConfig(256, blocks=1, layers=3, residual_channels=128, skip_channels=32,
                                             end_channels=32, num_outputs=256)), 256)


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("make", [lambda: wavenet(classes=256), wide_wavenet], ids=["6-channels", "128-channels"])
def test_wavenet_chain_agrees_with_the_torch_path_and_greedy_is_exact(triton_on_cpu, make, batch, dtype):
    """All dilated layers in one launch per sequence (kernel="chain") against the layer-by-layer torch products,
    teacher-forced over enough steps to wrap every layer's ring; then greedy decoding against the full forward."""
    torch.manual_seed(batch)
    model = make().eval()
    p = minimal_window(model) + 3
    ids = torch.randint(0, 256, (batch, p + 20))
    chain = init_state(model, ids[:, :p], dtype=dtype, kernel="chain")
    plain = init_state(model, ids[:, :p], dtype=dtype, kernel="torch")
    assert chain.kernel == "chain"
    tol = 1e-5 if dtype == torch.float32 else 3e-2      # bf16 windows: rounding of x_j, summed in another order
    for s in range(20):
        torch.testing.assert_close(chain.step(ids[:, p + s]).float(), plain.step(ids[:, p + s]).float(),
                                   rtol=tol, atol=tol)
    if dtype == torch.float32:
        n = 2 * 16 + 3
        generated = init_state(model, ids[:, :p], kernel="chain").generate(n, greedy=True, progress=False)
        assert greedy_agrees_with_forward(model, torch.cat([ids[:, :p], generated], 1), p, n) >= n


@pytest.fixture
def lookup_on_cpu(monkeypatch):
    """Let ``input_conv`` take the Triton lookup on CPU tensors (the interpreter runs it)."""
    monkeypatch.setattr(id_lookup, "use_triton", lambda device, dtype: dtype in (torch.float32, torch.bfloat16))


# 16 bits: float16 (the interpreter's tl.dot mishandled bf16 tiles in a kernel since removed); the kernels'
# 16-bit path is one code for both, and the GPU tests run it in bf16
@pytest.mark.parametrize("half", [None, torch.float16], ids=["float32", "float16-autocast"])
@pytest.mark.parametrize("classes, k, c", [(256, 5, 40), (256, 2, 128), (10, 3, 33)],
                         ids=["sequnet-input", "wavenet-input", "masked"])
def test_fused_lookup_equals_embedding_bag(lookup_on_cpu, classes, k, c, half):
    """The lookup's kernels against ``embedding_bag``: the same sums forward (in the same order: equal in float32,
    and within a unit after the cast to 16 bits), the weight and bias gradients to float32 rounding (another
    summation order: the table's gradient summed over the positions sorted by id)."""
    torch.manual_seed(k)
    conv = nn.Conv1d(classes, c, k)
    ids = torch.randint(0, classes, (3, 301))
    grad = torch.randn(3, c, 302 - k)

    def run(fused):
        conv.zero_grad()
        if fused:
            with torch.autocast("cpu", dtype=half or torch.bfloat16, enabled=half is not None):
                out = input_conv(conv, ids, fused)
        else:   # CPU autocast would sum embedding_bag's rows in 16 bits; a GPU sums them in float32, rounded once
            out = input_conv(conv, ids)
            out = out.to(half) if half else out
        (out.float() * grad).sum().backward()
        return out, conv.weight.grad.clone(), conv.bias.grad.clone()

    (ref, ref_w, ref_b), (got, got_w, got_b) = run(False), run(True)
    assert got.dtype == ref.dtype == (half or torch.float32) and got.stride() == ref.stride()
    # float32: the same sums; 16 bits: within one unit of the float32 sum (the interpreter may cast by truncation,
    # where a GPU rounds to nearest as torch does)
    torch.testing.assert_close(got.float(), input_conv(conv, ids).detach(), rtol=2 ** -10 if half else 0,
                               atol=1e-4 if half else 0)
    torch.testing.assert_close(got_w, ref_w, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(got_b, ref_b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("reduce", id_lookup.REDUCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("classes, k, c, chunk", [(256, 5, 40, None), (256, 5, 40, 32), (10, 3, 70, None),
                                                  (10, 3, 70, 32), (10, 3, 70, 7)],
                         ids=["sequnet-input", "sequnet-input-chunks-32", "masked", "masked-chunks-32",
                              "masked-chunks-7"])
def test_the_sorted_backward_is_the_table_gradient(monkeypatch, classes, k, c, dtype, chunk, reduce):
    """``id_lookup.table_grad_sorted`` (positions sorted by id, each program one class's piece): row v * k + j sums
    the output gradient over the positions t with ids[b, t + j] = v, against autograd through the gather it stands
    for. Pieces of 8 positions, so that long runs of a class (silence in mu-law audio) take several programs and
    the programs past the last piece add nothing; a class without positions gets a zero row; channels past a
    multiple of the block are masked; the gradient channels-last as trained uncompiled and channels-first as
    compiled. Sorted all at once and within chunks of 32 and 7 positions (chunks spanning two rows of the batch, a
    run of one class cut by chunk ends; with 10 classes in 39 chunks of 7, 390 segments, more than the pieces).
    The pieces' sums added atomically, and stored per piece and then added class by class (every row written,
    the absent class's too, into a table that is not zeroed first)."""
    monkeypatch.setattr(id_lookup, "_PIECE", 8)
    torch.manual_seed(k)
    batch, length = 3, 90
    n = length - k + 1
    ids = torch.randint(1, classes, (batch, length))
    ids[0, :40] = 7                               # a run of 40: five pieces of one class
    ids[2, -30:] = classes - 1
    table = torch.randn(classes * k, c, requires_grad=True)
    out = sum(table[ids[:, j:j + n] * k + j] for j in range(k)).transpose(1, 2)     # (batch, c, n)
    for grad in (torch.randn(batch, n, c).transpose(1, 2).to(dtype), torch.randn(batch, c, n).to(dtype)):
        (expected,) = torch.autograd.grad(out, table, grad.float(), retain_graph=True)
        got = id_lookup.table_grad_sorted(ids, grad, k, classes, chunk=chunk, reduce=reduce)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert not got.view(classes, k, c)[0].any()                               # class 0 never occurs
        # float32 sums of the same (exactly converted) terms in another order
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: residual(3, 5, 1, classes=256, features=16),
                                  lambda: wavenet(classes=256)], ids=["sequnet", "wavenet"])
def test_models_with_the_fused_lookup_train_as_without(lookup_on_cpu, make):
    torch.manual_seed(4)
    model = make()
    ids = torch.randint(0, 256, (2, model.body.history + 40))
    grads = []
    for fused in (False, True):
        use_fused_lookup(model, fused)
        model.zero_grad()
        model(ids).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)


def test_lookup_backward_benchmark_checks_and_times_each_tile(lookup_on_cpu, tmp_path):
    """benchmarks/lookup_backward.py at its quick shape: each tile's table gradient, summed each way, equals the
    default's before it is timed (a wrong tile stops the run), and the JSON has every tile, its warps and whose ids,
    and embedding_bag; positions sorted all at once and in chunks (of 256 of the 600: three chunks, one spanning the
    batch's two rows); a channels-first gradient, its pieces' sums added atomically and by class."""
    import json

    from test_benchmarks import benchmark_module

    script = benchmark_module("lookup_backward")
    with pytest.raises(ValueError, match="chunk '0'"):
        script.parse_chunk("0")
    out = tmp_path / "lb.json"
    assert script.main(["--device", "cpu", "--quick", "--reps", "1", "--tiles", "16x64", "8x256", "--warps", "8",
                        "--chunks", "all", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["kind"], r["tile"], r["chunk"], r["default"]) for r in rows] == [
        ("sorted", [16, 64], None, False), ("sorted", [8, 256], None, False), ("embedding_bag", None, None, False)]
    assert all(r["time_median_s"] > 0 for r in rows) and {r["ids"] for r in rows} == {"synthetic"}
    # the piano audio's ids: windows of the registered training recordings, checked and timed the same way, on a
    # channels-first gradient, as the compiled step hands it over
    assert script.main(["--device", "cpu", "--quick", "--reps", "1", "--tiles", "16x64", "--warps", "8", "--ids",
                        "piano", "--chunks", "256", "--layouts", "channels_first", "--reduces", "atomic", "partials",
                        "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["kind"], r["ids"], r["chunk"], r["layout"], r["tile"], r["reduce"]) for r in rows[:2]] == [
        ("sorted", "piano", 256, "channels_first", [16, 64], "atomic"),
        ("sorted", "piano", 256, "channels_first", [16, 64], "partials")]
    # a float32 gradient (the TF32 step's), its tiles timed apart from bf16's
    assert script.main(["--device", "cpu", "--quick", "--reps", "1", "--tiles", "16x64", "--warps", "8", "--dtype",
                        "fp32", "--chunks", "all", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["meta"]["dtype"] == "float32"
    ids = script.piano_ids(2, 300)
    assert ids.shape == (2, 300) and 0 <= ids.min() and ids.max() < 256 and len(ids.unique()) > 10
    with pytest.raises(ValueError, match="'8x100': both sizes must be powers of 2"):
        script.main(["--device", "cpu", "--quick", "--tiles", "8x100", "--out", str(out)])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("cls, kwargs", [(Conv1d, {"kernel_size": 5}), (Conv1d, {"kernel_size": 5, "stride": 2}),
                                         (Conv1d, {"kernel_size": 2, "dilation": 4}), (Conv1d, {"kernel_size": 1}),
                                         (ConvTranspose1d, {"kernel_size": 5, "stride": 2})],
                         ids=["k5", "k5-stride2", "k2-dilation4", "1x1", "transposed-k5-stride2"])
def test_the_triton_weight_gradient_is_the_products(cls, kwargs, dtype):
    """``weight_grad.weight_grad_triton`` against the batched products, in every geometry of the audio models, with
    channels that no tile divides (the masks), a sequence in one share or cut into several, the last cut short, and
    every tap in one program; float32 within float32 rounding (the interpreter does not round to TF32), 16-bit
    summed in float32."""
    torch.manual_seed(0)
    conv = use_channels_last(cls(24, 40, **kwargs))
    x = to_channels_last(torch.randn(3, 24, 300)).to(dtype)
    grad = to_channels_last(torch.randn(conv(x.float()).shape)).to(dtype)
    stride, dilation, k = conv.stride[0], conv.dilation[0], conv.kernel_size[0]
    transposed = cls is ConvTranspose1d
    expected = weight_grad.weight_grad(x.double(), grad.double(), k, stride, dilation, transposed)
    xt, gt = x.transpose(1, 2), grad.transpose(1, 2)
    whole, shifted = (xt, gt) if transposed else (gt, xt)
    for tile, programs in [((16, 16, 16), 4), ((32, 64, 16), 1), ((16, 32, 32), 500)]:
        got = weight_grad.weight_grad_triton(whole, shifted, k, stride, dilation, tile=tile, programs=programs)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-4, msg=f"tile {tile}")
        assert got.transpose(1, 2).is_contiguous()          # the weight's channels-last strides, as the products
    # the first tile cuts each sequence into shares (the last one short), the others keep it whole
    units = 3 * -(-whole.shape[2] // 16) * -(-shifted.shape[2] // 16)
    assert weight_grad.shares_for(units, whole.shape[1], 16, 4) > 1
    assert weight_grad.shares_for(units, whole.shape[1], 32, 1) == 1


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_a_model_switched_to_the_triton_weight_gradients_trains_as_with_cudnns(monkeypatch, compiled):
    """The switch end to end: ``use_mm_weight_grad(model, kernel="triton")`` gives the Seq-U-Net's gradients (its
    strided, transposed and 1x1 convolutions) through the Triton kernel where Triton runs (here the interpreter),
    once a convolution; compiled too, where the backward's graph calls it as one operator
    (``torch.ops.sequnet.weight_grad_triton``), as it calls cuDNN's."""
    calls = []
    real = weight_grad.weight_grad_triton
    monkeypatch.setattr(weight_grad, "use_triton", lambda device, dtype: dtype == torch.float32)
    monkeypatch.setattr(weight_grad, "weight_grad_triton", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    torch.manual_seed(0)
    model = use_channels_last(residual(3, 5, 1, classes=256, features=16))
    twin = use_mm_weight_grad(copy.deepcopy(model), kernel="triton")
    x = torch.randint(0, 256, (2, 301))
    grads = []
    for m, run in ((model, model), (twin, torch.compile(twin, dynamic=False) if compiled else twin)):
        loss = run(x).float().square().mean()
        grads.append(dict(zip([name for name, _ in m.named_parameters()],
                              torch.autograd.grad(loss, list(m.parameters())))))
    # every convolution's but the first's, over the ids (a lookup, not a convolution: id_lookup)
    assert len(calls) == sum(isinstance(m, (Conv1d, ConvTranspose1d)) and m is not twin.body.in_conv
                             for m in twin.modules())
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-5, msg=name)


def test_weight_grad_kernels_benchmark_checks_and_times_the_triton_kernel(tmp_path):
    """benchmarks/weight_grad_kernels.py with Triton (here its interpreter): each tile's result checked against
    ATen's before it is timed, and the totals name the one tile best over the model's layers."""
    import json
    from test_benchmarks import benchmark_module
    weight_grad_kernels = benchmark_module("weight_grad_kernels")
    out = tmp_path / "wg.json"
    assert weight_grad_kernels.main(["--device", "cpu", "--quick", "--reps", "1", "--batch", "2", "--archs", "sequnet",
                                     "--dtypes", "fp32", "--tiles", "32x64x64", "16x32x16", "--warps", "4",
                                     "--stages", "2", "--ways", "products", "triton", "--out", str(out)]) == 0
    bench = json.loads(out.read_text())
    assert {r["way"] for r in bench["rows"]} == {"cudnn", "products", "triton"} and bench["meta"]["triton"]
    (total,) = bench["totals"]
    assert total["triton_one_tile"] in ([32, 64, 64], [16, 32, 16]) and total["triton_one_tile_s"] > 0
    assert total["triton_one_tile_warps"] == 4 and total["triton_one_tile_stages"] == 2


def test_grid_barrier_benchmark_runs_each_way_and_checks_it(tmp_path):
    """benchmarks/grid_barrier.py in the interpreter: one layer a launch (with and without PDL's wait, which on the
    CPU is none) and the persistent kernel on its one program compute the chain bit for bit alike and within a bf16
    unit of torch's, the barrier's counter is zero after each run, and every way is timed; several programs a
    layer split its rows, which only the launches may do here (the interpreter would wait forever at a barrier)."""
    import json

    from test_benchmarks import benchmark_module

    script = benchmark_module("grid_barrier")
    out = tmp_path / "gb.json"
    assert script.main(["--device", "cpu", "--quick", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["way"], r["layers"], r["programs"]) for r in rows] == [
        ("launches", 3, 1), ("launches-plain", 3, 1), ("persistent", 3, 1)]
    assert all(r["per_layer_s"] > 0 for r in rows)
    assert script.main(["--device", "cpu", "--widths", "64", "--layers", "2", "--programs", "4", "--ways",
                        "launches", "--replays", "1", "--repeats", "1", "--out", str(out)]) == 0
    assert [r["rows_a_program"] for r in json.loads(out.read_text())["rows"]] == [16]
    # a persistent kernel whose rows are wrong is caught before it is timed
    w = torch.randn(2, 16, 16).to(torch.bfloat16)
    y = torch.zeros(3, 16, dtype=torch.bfloat16)
    y[0] = 1
    count = torch.zeros(2, dtype=torch.int32)
    script.chain("persistent", w, y, count, 1)()
    torch.testing.assert_close(y.float(), script.reference(w, y), rtol=0, atol=2e-2)
    assert count.tolist() == [0, 0]
    y[1:] = 0
    script.chain("persistent", w.transpose(1, 2).contiguous(), y, count, 1)()
    assert not torch.allclose(y.float(), script.reference(w, y), rtol=0, atol=2e-2)
