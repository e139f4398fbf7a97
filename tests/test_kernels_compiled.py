"""The generation kernels compiled for a Hopper GPU (sm_90) without one. Opt-in: skipped unless Triton with its
NVIDIA backend (ptxas ships in the wheel) is importable and TRITON_INTERPRET is off; the CPU environment does not
install Triton:

    pip install --no-deps --target /tmp/triton-site triton
    PYTHONPATH=/tmp/triton-site python -m pytest tests/test_kernels_compiled.py

Triton compiles a kernel for the constexprs it is launched with, and the interpreter (test_kernels_interpreted.py)
runs a kernel's logic without compiling it. So a variant can fail only on the GPU: at 2daef2c rowdot's tensor-core
tile in bf16 returned two types and did not compile, which the GPU suite found (4 failures of
test_each_product_launched_alone_gives_the_same_bits_with_and_without_pdl, results/gpu-test/gpu-test-2daef2c-h100.log).
Here the kernels compile, to PTX and through ptxas, with the constexprs their launchers pass: both dtypes of the
Triton paths, with and without programmatic dependent launch, the layer shapes of the paper's piano models, the
heads that sample and run the next step's start. What each computes is the interpreter's and the GPU suite's to
check."""
from __future__ import annotations

import itertools
import os

import pytest
import torch

from sequnet.core.generation import kernels, splitk, step_kernels
from sequnet.core.models import weight_grad

try:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
except Exception:   # noqa: BLE001 - no Triton here (the CPU environment)
    triton = None

# On the GPU machine the suite launches these kernels, and 148 more compiles would push it further past one
# command (it took over 570 s on an H100 at 2daef2c), so there the GPU tests stand for this file.
pytestmark = [pytest.mark.skipif(triton is None or os.environ.get("TRITON_INTERPRET") == "1",
                                 reason="needs Triton with its NVIDIA backend, and TRITON_INTERPRET off"),
              pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the GPU tests launch these kernels")]

HOPPER = "cuda", 90, 32
# pointers that are not in the state's dtype; every other pointer is, and every other argument an int32
OTHER_POINTERS = {"noise": "*fp32", "part": "*fp32", "pre": "*fp32", "count": "*i32", "ids": "*i64", "rec": "*i64",
                  "n_desc": "*i64", "desc": "*i64", "n_clock": "*i64", "clock": "*i64", "period": "*i64",
                  "base": "*i64"}


def _compile(fn, pointers: set[str], dtype: str, others: dict | None = None, options: dict | None = None,
             **constexprs):
    """Compile ``fn`` for sm_90 with these constexprs: the named ``pointers`` in ``dtype`` ("bf16", "fp32"), the
    ``OTHER_POINTERS`` and ``others`` as they say; 4 warps unless ``options`` say otherwise. Returns the kernel."""
    sig, others = {}, OTHER_POINTERS | (others or {})
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name in others and name not in pointers:
            sig[name] = others[name]
        else:
            sig[name] = f"*{dtype}" if name in pointers else "i32"
    kernel = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs), target=GPUTarget(*HOPPER),
                            options={"num_warps": 4} | (options or {}))
    assert kernel.asm["cubin"]
    return kernel


# the next step's start as a head runs it: the Seq-U-Net's input layer (5 taps of partial sums, leaky) and shifts
START = dict(N_K=5, N_LEAKY=True, N_SUMS=True, N_CLOCK=False, N_BLOCK=1024, N_IBLOCK=256, N_KB=8, N_RPP=1)
NO_START = dict(N_K=1, N_LEAKY=False, N_SUMS=False, N_CLOCK=False, N_BLOCK=16, N_IBLOCK=16, N_KB=1, N_RPP=1)
HEAD_POINTERS = {"out", "n_buf", "n_table", "n_src", "n_dst", "n_out"}
# (KIND, NPART, HAS_ID, ROWS, RELU_X, SAMPLE, NEXT): kernels.KINDS 0 gate, 1 leaky, 3 none
LAYERS = {"wavenet-dilated": (0, 2, True, 1, False, False, False),
          "sequnet-level": (0, 1, True, 1, False, False, False),
          "sequnet-up": (0, 2, True, 1, False, False, False),
          "sequnet-transposed": (0, 1, True, 2, False, False, False),
          "leaky-rows": (1, 1, False, 2, False, False, False),
          "head": (3, 1, False, 1, True, False, False),
          "head-samples": (3, 1, False, 1, True, True, False),
          "head-samples-starts": (3, 1, False, 1, True, True, True)}
# (DOT, BB, BC for one row, BK, NK): batch 1 and 4 element-wise, in one tile of taps or two; batch 28 on the tensor
# cores
TILES = {"batch1": (False, 1, 2, 1024, 1), "batch4": (False, 4, 2, 512, 2), "batch28": (True, 16, 16, 64, 3)}


@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("layer", LAYERS)
def test_rowdot_compiles_for_every_layer_tile_and_dtype(layer, tile, dtype, pdl):
    kind, nparts, has_id, rows, relu_x, sample, nxt = LAYERS[layer]
    dot, bb, bc, bk, nk = TILES[tile]
    _compile(kernels._rowdot_kernel, {"x1", "w1", "x2", "w2", "bias", "ident"} | HEAD_POINTERS, dtype,
             KIND=kind, NPART=nparts, ROWS=rows, HAS_BIAS=True, HAS_ID=has_id, RELU_X=relu_x, BB=bb,
             BC=bc // rows if dot else bc, BK=bk, NK=nk, DOT=dot, IEEE=dtype == "fp32", SAMPLE=sample,
             HAS_NOISE=sample, HAS_REC=sample, VB=256 if sample else 16, NEXT=nxt, PDL=pdl,
             **(START if nxt else NO_START))


@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("dot, bb", [(False, 4), (True, 32)], ids=["element-wise", "tensor-cores"])
@pytest.mark.parametrize("relu_x", [False, True])
def test_split_k_products_compile(relu_x, dot, bb, dtype, pdl):
    _compile(splitk._matvec_kernel, {"x1", "w1", "x2", "w2"}, dtype, CHUNK=128, BK=64, BN=64, BB=bb, DOT=dot,
             IEEE=dtype == "fp32", RELU_X=relu_x, PDL=pdl)


@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
@pytest.mark.parametrize("nsplit", [0, 4], ids=["loop", "unrolled"])
@pytest.mark.parametrize("kind, has_id, sample, nxt", [(0, True, False, False), (1, False, False, False),
                                                       (3, False, True, False), (3, False, True, True)],
                         ids=["gate", "leaky", "head-samples", "head-samples-starts"])
def test_split_k_activation_compiles(kind, has_id, sample, nxt, nsplit, dtype, pdl):
    _compile(splitk._activate_kernel, {"bias", "ident"} | HEAD_POINTERS, dtype, KIND=kind, HAS_BIAS=True,
             HAS_ID=has_id, BLOCK=256, SAMPLE=sample, HAS_NOISE=sample, HAS_REC=sample, VB=256 if sample else 16,
             NEXT=nxt, NSPLIT=nsplit, PDL=pdl, **(START if nxt else NO_START))


@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_step_kernels_compile(dtype, pdl):
    for has_input, sums, clock in itertools.product([False, True], [False, True], [False, True]):
        _compile(step_kernels._start_kernel, {"buf", "table", "src", "dst", "out"}, dtype, K=5 if sums else 1,
                 LEAKY=sums, SUMS=sums, CLOCK=clock, HAS_INPUT=has_input, BLOCK=1024, IBLOCK=256,
                 KB=8 if sums else 1, PDL=pdl)
    _compile(step_kernels._wavenet_end_kernel, {"ring", "x", "old"}, dtype, BLOCK=1024, PDL=pdl)
    for noise, record in itertools.product([False, True], [False, True]):
        _compile(step_kernels._sample_kernel, {"logits"}, dtype, {"out": "*i64"}, HAS_NOISE=noise, HAS_REC=record,
                 BLOCK=256, PDL=pdl)


@pytest.mark.parametrize("taps", [1, 2, 5])
@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_the_weight_gradient_kernel_compiles_onto_hoppers_tensor_cores(dtype, taps):
    """weight_grad's kernel in its default tile, warps and stages for each dtype, for the audio models' taps. Its
    operands are channels-last, the summed positions strided, which wgmma does not read in TF32: the tiles are
    written to shared memory transposed, and this checks that its products still run as wgmma, not the older
    mma.sync, in float32 too."""
    (bt, bp, bq), warps, stages = weight_grad.TILE["float32" if dtype == "fp32" else "16-bit"]
    kernel = _compile(weight_grad._wgrad_kernel, {"whole", "shifted"}, dtype, options={"num_warps": warps,
                      "num_stages": stages}, K=taps, BT=bt, BP=bp, BQ=bq,
                      PRECISION="tf32" if dtype == "fp32" else "ieee")
    ptx = kernel.asm["ptx"]
    assert "wgmma.mma_async" in ptx and "mma.sync" not in ptx
    assert (".tf32.tf32" in ptx) == (dtype == "fp32")
