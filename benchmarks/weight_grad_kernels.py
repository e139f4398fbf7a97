"""The piano models' convolution weight gradients alone, several ways side by side in one process: cuDNN's (the
autotuner on from the start), cuBLAS's batched products and the Triton kernel of ``sequnet.core.models.weight_grad``
for several tiles, layer by layer at the training shape (batch 16, 5,000 targets), bf16 and float32 (TF32);
``--ways`` picks some; cuDNN's also from channels-first copies of the input and the output gradient (made before the
timing, and within it); and the Triton kernel on such copies (``triton_cf``: the summed positions contiguous, so
its copies into shared memory need not transpose). Float32 products run in TF32 where cuDNN's convolutions do
(before dc7d64c they ran in full float32: the ``products`` rows of ``results/bench/weight-grad-kernels-h100.json``).
Two further ways were removed: cuDNN's with each convolution presented with time on the height axis, no faster on
an H100 at 61c99ab (``results/bench/weight-grad-time-h-h100.json``), and cuBLAS's products of channels-first copies
with the sequences end to end (``products_cf``), slower than cuDNN's on an H100 at dc7d64c even with the copies made
before the timing (``results/bench/weight-grad-tf32-products-cf-h100.json``).

Why: in float32 cuDNN's weight gradients took 19.5 ms of the compiled Seq-U-Net's 59.3 ms step on an H100, 2.3
times its forward convolutions' 8.6 ms for the same FLOPs (``results/logs/2026-12-05d-*``), and the products were
slower still. Each layer's geometry (input and weight shapes, stride, dilation, transposed or not) is taken from the
model's own forward. The models have many (WaveNet 107, most of them a dilation apart), so geometries alike are
timed as one group (:func:`groups`: the same weight, stride and transposition, dilated or not, input lengths within
a factor of 4): its largest member is timed and stands for the group's FLOPs, so the totals are estimates whose
error is the members' difference in speed per FLOP. Every way's result is checked against cuDNN's before it is
timed. On a CPU (``--quick``) cuDNN's place is ATen's convolution
backward, and the Triton kernel runs only in Triton's interpreter (``TRITON_INTERPRET=1``).

    python benchmarks/weight_grad_kernels.py --out results/bench/weight-grad-kernels-h100.json
    python benchmarks/weight_grad_kernels.py --quick --device cpu --out /tmp/x.json
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lookup_backward import timed  # noqa: E402
from training import build, make_batch, setting_for  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402
from sequnet.analysis.complexity import run_metadata  # noqa: E402
from sequnet.core.models import use_channels_last, use_cropped_skips, weight_grad  # noqa: E402
from sequnet.core.models.layers import Conv1d, ConvTranspose1d, mm_applies, to_channels_last  # noqa: E402
from sequnet.core.triton_guard import triton  # noqa: E402

TILES = ["32x128x32", "32x128x64", "64x128x32", "32x64x64", "16x128x32"]


def parse_tile(text: str) -> tuple[int, int, int]:
    try:
        tile = tuple(int(x) for x in text.split("x"))
    except ValueError:
        tile = ()
    if len(tile) != 3 or any(x < 16 or x & (x - 1) for x in tile):
        raise ValueError(f"tile {text!r}: expected POSITIONSxFIRSTxSECOND, powers of 2 of at least 16, e.g. 64x64x64")
    return tile


def geometries(arch: str, device, batch: int, quick: bool, bf16: bool) -> Counter:
    """How often each (x shape, weight shape, stride, dilation, transposed) occurs among the convolutions of the
    piano ``arch``'s training step whose weight gradient ``weight_grad`` can take (the trainer's GPU path: channels
    padded, channels-last, WaveNet's skips cropped)."""
    setting = setting_for("piano_audio", arch, quick)
    model = build(setting, device, {"channels_last": True, "fused_gate": False})
    if arch == "wavenet":
        use_cropped_skips(model)
    use_channels_last(model)
    seen: Counter = Counter()
    # recorded where the layers convolve: WaveNet's output layers convolve twice, with slices of their weight
    # (skips cropped, residual whole), through Conv1d.conv rather than forward
    conv, forward = Conv1d.conv, ConvTranspose1d.forward

    def record(module, x, weight, transposed: bool):
        if mm_applies(module):
            seen[(tuple(x.shape), tuple(weight.shape), module.stride[0], module.dilation[0], transposed)] += 1

    def conv_recorded(self, x, weight, bias):
        record(self, x, weight, False)
        return conv(self, x, weight, bias)

    def forward_recorded(self, x, output_size=None):
        record(self, x, self.weight, True)
        return forward(self, x, output_size)

    x, _ = make_batch(setting, batch, device, quick)
    Conv1d.conv, ConvTranspose1d.forward = conv_recorded, forward_recorded
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            model(x)
    finally:
        Conv1d.conv, ConvTranspose1d.forward = conv, forward
    return seen


def flops(geometry) -> float:
    """Multiply-adds of ``geometry``'s weight gradient, times 2: one per weight entry and output position."""
    x_shape, w_shape, stride, dilation, transposed = geometry
    return 2 * x_shape[0] * out_length(geometry) * w_shape[0] * w_shape[1] * w_shape[2] / (stride if transposed else 1)


def out_length(geometry) -> int:
    x_shape, w_shape, stride, dilation, transposed = geometry
    span, length = dilation * (w_shape[2] - 1), x_shape[2]
    return (length - 1) * stride + span + 1 if transposed else (length - span - 1) // stride + 1


def groups(found: Counter) -> list[tuple[tuple, int, float]]:
    """(representative geometry, layers, scale) for the groups of alike geometries in ``found``: the largest
    member, how many layers the group has, and its FLOPs over the representative's (its time's multiplier)."""
    grouped: dict[tuple, list] = {}
    for g, count in found.items():
        x_shape, w_shape, stride, dilation, transposed = g
        key = (w_shape, stride, dilation > 1, transposed, int(math.log2(x_shape[2])) // 2)
        grouped.setdefault(key, []).append((g, count))
    out = []
    for members in grouped.values():
        rep = max(members, key=lambda m: flops(m[0]))[0]
        out.append((rep, sum(c for _, c in members), sum(flops(g) * c for g, c in members) / flops(rep)))
    return sorted(out, key=lambda r: -flops(r[0]) * r[2])


WAYS = ["cudnn", "cudnn_cf", "cudnn_cf_copies", "products", "triton", "triton_cf"]


def cudnn_weight_grad(x, grad, weight, stride, dilation, transposed):
    """cuDNN's weight gradient (ATen's convolution backward on a CPU), with the time on the width as F.conv1d puts
    it."""
    return torch.ops.aten.convolution_backward(
        grad.unsqueeze(2), x.unsqueeze(2), weight.unsqueeze(2), None, [1, stride], [0, 0], [1, dilation], transposed,
        [0, 0], 1, [False, True, False])[1].squeeze(2)


def time_geometry(geometry, layers: int, scale: float, dtype, tiles, warps_list, device, reps: int,
                  triton_ok: bool, ways_wanted=tuple(WAYS), stages_list=(None,)) -> list[dict]:
    """A row for each way in ``ways_wanted`` (and Triton tile, warps and stages) of one geometry's weight gradient, each
    checked first against cuDNN's; ``layers`` and ``scale`` (:func:`groups`) travel with the rows."""
    x_shape, w_shape, stride, dilation, transposed = geometry
    g = torch.Generator(device="cpu").manual_seed(0)
    x = to_channels_last(torch.randn(x_shape, generator=g)).to(device, dtype)
    weight = torch.randn(w_shape, generator=g).to(device, dtype)
    k, out_len = w_shape[-1], out_length(geometry)
    grad = to_channels_last(torch.randn(x_shape[0], w_shape[1] if transposed else w_shape[0], out_len,
                                        generator=g)).to(device, dtype)
    expected = cudnn_weight_grad(x, grad, weight, stride, dilation, transposed).float()
    # cuDNN's on channels-first copies ("cudnn_cf": made before the timing; "cudnn_cf_copies": made within it, the
    # least a trainer with channels-last activations would pay). The weight gradient's reduction runs over the
    # positions, which channels-last stores apart: Hopper's wgmma reads TF32 operands only with the reduction's axis
    # contiguous (its transposed layouts are for 16-bit types), so channels-first operands might have suited it
    # better. They did not: slower for both models in both precisions (H100, c7033da,
    # results/bench/weight-grad-layouts-h100.json).
    x_cf, grad_cf = x.contiguous(), grad.contiguous()
    ways = [("cudnn", None, None, lambda: cudnn_weight_grad(x, grad, weight, stride, dilation, transposed)),
            ("cudnn_cf", None, None, lambda: cudnn_weight_grad(x_cf, grad_cf, weight, stride, dilation, transposed)),
            ("cudnn_cf_copies", None, None, lambda: cudnn_weight_grad(x.contiguous(), grad.contiguous(), weight,
                                                                      stride, dilation, transposed)),
            ("products", None, None, lambda: weight_grad.weight_grad(x, grad, k, stride, dilation, transposed))]
    ways = [w for w in ways if w[0] in ways_wanted]
    # the Triton kernel on the channels-last activations, and on the channels-first copies ("triton_cf", made
    # before the timing): there the summed positions are contiguous, as Hopper's wgmma takes TF32 operands, so the
    # kernel needs no transposition on its way to shared memory: its ceiling without it
    for way, (xo, go) in (("triton", (x, grad)), ("triton_cf", (x_cf, grad_cf))):
        if not (triton_ok and way in ways_wanted):
            continue
        xt, gt = xo.transpose(1, 2), go.transpose(1, 2)
        whole, shifted = (xt, gt) if transposed else (gt, xt)
        for tile in tiles:
            for warps in warps_list:
                for stages in stages_list:
                    ways.append((way, (tile, warps, stages), None, lambda w=whole, s=shifted, tile=tile, warps=warps,
                                 stages=stages: weight_grad.weight_grad_triton(w, s, k, stride, dilation, tile=tile,
                                                                               warps=warps, stages=stages)))
    work = flops(geometry)
    rows = []
    magnitude = expected.abs().max().item() or 1.0      # errors are relative to the largest entry
    for way, config, _, run in ways:
        tile, warps, stages = config or (None, None, None)
        label = f"{way} {'x'.join(map(str, tile))} {warps}w {stages or '-'}s" if tile else way
        row = {"geometry": {"x": list(x_shape), "weight": list(w_shape), "stride": stride, "dilation": dilation,
                            "transposed": transposed},
               "layers": layers, "scale": scale, "dtype": str(dtype).removeprefix("torch."), "way": way,
               "tile": list(tile) if tile else None, "warps": warps, "stages": stages, "flops": work}
        try:
            error = (run().float() - expected).abs().max().item() / magnitude
            if error > (2e-2 if dtype != torch.float32 else 1e-2):
                raise AssertionError(f"max error {error:.3g} of the largest entry")
        except Exception as e:
            if not way.startswith("triton"):
                raise
            # one tile that fails (wrong, or too big for the GPU's shared memory) is a row saying so: the other
            # tiles' timings still come back from the GPU
            rows.append({**row, "failed": f"{type(e).__name__}: {e}"[:300]})
            print(f"{str(w_shape):16s} T{x_shape[2]:<6d} {label}: FAILED {rows[-1]['failed']}", flush=True)
            continue
        t = timed(run, device, reps)
        rows.append({**row, "time_median_s": t, "tflops_per_s": work / t / 1e12, "max_error": error})
        print(f"{str(dtype)[6:]:8s} {str(w_shape):16s} T{x_shape[2]:<6d} s{stride} d{dilation:<4d}"
              f"{'T' if transposed else ' '} x{scale:5.1f} {label:22s} {t * 1e3:8.3f} ms "
              f"{work / t / 1e12:6.1f} TFLOP/s", flush=True)
    return rows


def totals(rows: list[dict]) -> list[dict]:
    """Per model and dtype: each way's time summed over the groups, each group's time its representative's times
    its scale (Triton at its best tile per group, and at the one tile best over all)."""
    out = []
    for arch, dtype in dict.fromkeys((r["arch"], r["dtype"]) for r in rows):
        mine = [r for r in rows if (r["arch"], r["dtype"]) == (arch, dtype)]
        geoms = list(dict.fromkeys(str(r["geometry"]) for r in mine))

        def best(pick) -> float:
            # a way that failed on any group has no total (inf)
            return sum(min((r.get("time_median_s", math.inf) * r["scale"] for r in mine
                            if str(r["geometry"]) == gm and pick(r)), default=math.inf) for gm in geoms)
        entry = {"arch": arch, "dtype": dtype, "layers": sum(r["layers"] for r in mine if r["way"] == "cudnn"),
                 "groups": len(geoms),
                 **{f"{way}_s": best(lambda r, way=way: r["way"] == way) for way in WAYS if way != "triton"}}
        configs = {(tuple(r["tile"]), r["warps"], r.get("stages")) for r in mine if r["way"] == "triton"}
        if configs:
            entry["triton_best_per_layer_s"] = best(lambda r: r["way"] == "triton")
            one = {c: best(lambda r, c=c: r["way"] == "triton" and (tuple(r["tile"]), r["warps"], r.get("stages")) == c)
                   for c in configs}
            tile, warps, stages = min(one, key=one.get)
            entry.update(triton_one_tile_s=one[(tile, warps, stages)], triton_one_tile=list(tile),
                         triton_one_tile_warps=warps, triton_one_tile_stages=stages)
        out.append({key: None if value == math.inf else value for key, value in entry.items()})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--archs", nargs="+", choices=["sequnet", "wavenet"], default=["sequnet", "wavenet"])
    ap.add_argument("--dtypes", nargs="+", choices=["bf16", "fp32"], default=["fp32", "bf16"])
    ap.add_argument("--tiles", nargs="+", default=TILES, help="POSITIONSxFIRSTxSECOND, e.g. 64x64x64")
    ap.add_argument("--warps", nargs="+", type=int, default=[8])
    ap.add_argument("--stages", nargs="+", type=int, default=None,
                    help="the Triton kernel's pipeline stages (default: weight_grad.TILE's for the dtype)")
    ap.add_argument("--ways", nargs="+", choices=WAYS, default=WAYS, help="cuDNN's always runs: the others' reference")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="the quick models' small shapes (for a CPU)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    try:
        tiles = [parse_tile(t) for t in a.tiles]
    except ValueError as e:
        ap.error(str(e))
    device = torch.device(a.device)
    # from the first convolution on, as the compiled trainer runs them (cuDNN keeps the first plan it ran for a
    # shape: benchmarks/piano_step.py, check_autotuner)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    # float32 products in TF32 where cuDNN's convolutions are (by default), as the step benchmark runs them
    # (benchmarks/piano_step.py's mm_wgrad): like against like
    if torch.backends.cudnn.allow_tf32:
        torch.set_float32_matmul_precision("high")
    triton_ok = triton is not None and (device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1")
    rows = []
    ways = list(dict.fromkeys(["cudnn", *a.ways]))       # cuDNN's, the others' reference, always runs
    meta = {**run_metadata(device), "batch": a.batch, "quick": a.quick, "reps": a.reps, "triton": triton_ok,
            "ways": ways,
            "cudnn_benchmark": torch.backends.cudnn.benchmark, "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    for arch in a.archs:
        for name in a.dtypes:
            dtype = torch.bfloat16 if name == "bf16" else torch.float32
            for geometry, layers, scale in groups(geometries(arch, device, a.batch, a.quick, name == "bf16")):
                rows += [{"arch": arch, **r} for r in time_geometry(geometry, layers, scale, dtype, tiles, a.warps,
                                                                    device, a.reps, triton_ok, ways,
                                                                    a.stages or (None,))]
                # after every group, marked unfinished: a run its time limit stops keeps what it timed (its
                # totals then cover the groups it reached only)
                write_bench(a.out, {"meta": {**meta, "finished": False}, "rows": rows, "totals": totals(rows)})
    summary = totals(rows)
    for s in summary:
        print(s, flush=True)
    write_bench(a.out, {"meta": {**meta, "finished": True}, "rows": rows, "totals": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
