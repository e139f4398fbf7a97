"""The Triton lookup's table gradient alone (``sequnet.core.models.id_lookup.table_grad_sorted``), at the piano
Seq-U-Net's training shape, for several tiles and chunks side by side in one process, beside ``embedding_bag``'s
backward.

In the H100 profile of the compiled bf16 step (2026-12-05, 1c69402) its kernel took 2.25 ms of 31 ms: it reads the
gradient (16 x 36,853 positions x 192 channels, bf16: 226 MB) about k = 5 times, which at the H100's 3.35 TB/s
would take about 0.34 ms. Each program gathers the rows of one class's positions, ``tile[1]`` channels of each (64
by default: 128 bytes of a 384-byte row), so wider channel blocks read longer runs of memory per row, and sums them
over the positions of each gathered tile. ``--chunks``: how many consecutive positions are sorted by id together
(``all``: every position at once, the kernel until 2026-12-06): within a chunk, the k reads of a gradient row come
close together in time and can be served by the L2 cache. Each variant's result is checked against the positions
sorted all at once with the default tile before it is timed. (Summing all taps of a position into one accumulator
reduced at the end was timed here too, slower at every tile, and removed:
results/bench/lookup-backward-ids-h100.json.)

``--layouts``: the gradient channels-last (as the uncompiled step hands it over) or channels-first (as the compiled
step does: Inductor's code of 2026-12-05 passes strides (7,075,776, 36,853, 1)). (On a channels-first gradient,
gathering a position's k taps together, one (positions, channels, taps) tile, was timed here too, slower, and
removed: 3.88 ms against 1.13 on the piano audio's ids, results/bench/lookup-backward-layouts-h100.json.)

``--reduces``: how the pieces' sums reach the table, added atomically (``atomic``) or stored piece by piece and
added class by class in a second kernel (``partials``: no two programs add to one row, and the result repeats bit
for bit).

``--ids`` says whose ids: ``synthetic`` (uniform, a fraction ``--silence`` of them silence) or ``piano``
(windows of the registered piano recordings' training audio, mu-law, as the trainer reads them). The kernel's
time depends on them: a class's sorted positions are its reads, and in real audio a class's positions often lie
next to each other, so that neighbouring reads share rows.

    python benchmarks/lookup_backward.py --out results/bench/lookup-backward-h100.json
    python benchmarks/lookup_backward.py --ids synthetic piano --out results/bench/lookup-backward-ids-h100.json
    python benchmarks/lookup_backward.py --dtype fp32 --out results/bench/lookup-backward-fp32-h100.json
    python benchmarks/lookup_backward.py --ids synthetic piano --tiles 16x64 --warps 8 \
        --chunks all 4096 16384 65536 --out results/bench/lookup-backward-chunks-h100.json
    python benchmarks/lookup_backward.py --ids piano --layouts channels_first --tiles 16x64 --warps 8 \
        --chunks 16384 --reduces atomic partials --out results/bench/lookup-backward-reduce-h100.json
    python benchmarks/lookup_backward.py --quick --out /tmp/x.json   # small shapes (Triton's interpreter on a CPU)
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sequnet.analysis.benchmarks import write_bench  # noqa: E402
from sequnet.analysis.complexity import run_metadata  # noqa: E402
from sequnet.core.models import id_lookup  # noqa: E402

TILES = ["32x64", "16x64", "16x128", "8x256", "16x256"]


def parse_tile(text: str) -> tuple[int, int]:
    try:
        bt, bc = (int(x) for x in text.split("x"))
    except ValueError:
        raise ValueError(f"tile {text!r}: expected POSITIONSxCHANNELS, e.g. 32x64") from None
    if any(x < 1 or x & (x - 1) for x in (bt, bc)):
        raise ValueError(f"tile {text!r}: both sizes must be powers of 2")
    return bt, bc


def make_inputs(batch: int, length: int, channels: int, k: int, classes: int, silence: float, device, dtype):
    """Ids uniform over the classes, with a fraction ``silence`` of them the one class of mu-law silence (piano
    recordings hold long quiet stretches, which make one class's run of sorted positions long), and a
    channels-last output gradient, as the uncompiled trainer's backward hands it over."""
    g = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(0, classes, (batch, length), generator=g)
    ids[torch.rand(batch, length, generator=g) < silence] = classes // 2
    n = length - k + 1
    grad = torch.randn(batch, n, channels, generator=g).to(dtype).transpose(1, 2)
    return ids.to(device), grad.to(device)


def piano_ids(batch: int, length: int) -> torch.Tensor:
    """``batch`` windows of ``length`` mu-law ids from the registered piano pieces' training audio (the data
    mirror, SEQUNET_DATA_MIRROR, or the registry), at positions drawn with a fixed seed."""
    from sequnet.data.audio import load_audio_corpus
    audio = torch.cat([piece.long() for piece in load_audio_corpus().train.values()])
    if audio.numel() < length:
        raise ValueError(f"the piano training audio has {audio.numel()} samples, fewer than a window of {length}")
    g = torch.Generator(device="cpu").manual_seed(0)
    starts = torch.randint(0, audio.numel() - length + 1, (batch,), generator=g).tolist()
    return torch.stack([audio[s:s + length] for s in starts])


def parse_chunk(text: str) -> int | None:
    if text == "all":
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"chunk {text!r}: expected a positive number of positions, or all")
    return int(text)


def time_sorted(ids, grad, k, classes, source, tiles, warps_list, chunks, device, reps,
                reduces=(id_lookup.REDUCE,)) -> list[dict]:
    """A row for each way of adding the pieces' sums, chunk, tile and warps of the sorted backward on ``ids``, each
    checked first against the positions sorted all at once with the default tile (float32 sums in another
    order)."""
    layout = "channels_first" if grad.stride(2) == 1 else "channels_last"
    expected = id_lookup.table_grad_sorted(ids, grad, k, classes, chunk=None)
    rows = []
    for reduce, chunk, tile, warps in itertools.product(reduces, chunks, tiles, warps_list):
        def run():
            return id_lookup.table_grad_sorted(ids, grad, k, classes, tile=tile, warps=warps, chunk=chunk,
                                               reduce=reduce)
        torch.testing.assert_close(run(), expected, rtol=1e-4, atol=1e-3)
        t = timed(run, device, reps)
        default = (tile, warps, chunk, reduce) == (id_lookup.SORT_TILE, id_lookup.SORT_WARPS, id_lookup.CHUNK,
                                                   id_lookup.REDUCE)
        rows.append({"kind": "sorted", "ids": source, "layout": layout, "tile": list(tile), "warps": warps,
                     "chunk": chunk, "reduce": reduce, "default": default, "time_median_s": t,
                     "gradient_bytes": grad.numel() * grad.element_size()})
        print(f"{source:9s} {layout:14s} {tile[0]:3d}x{tile[1]:<3d} {warps} warps, chunk {chunk or 'all':>6} "
              f"{reduce:8s} {t * 1e3:8.3f} ms", flush=True)
    return rows


def timed(fn, device, reps: int) -> float:
    """Median seconds of ``fn``: triton.testing.do_bench on a GPU (it clears the L2 cache between calls), a
    wall clock on a CPU."""
    if device.type == "cuda":
        import triton.testing
        return triton.testing.do_bench(fn, rep=reps * 10, return_mode="median") / 1e3
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiles", nargs="+", default=TILES, help="POSITIONSxCHANNELS, e.g. 32x64")
    ap.add_argument("--layouts", nargs="+", choices=["channels_last", "channels_first"], default=["channels_last"],
                    help="the output gradient's layout: as the uncompiled step hands it over, or as the compiled")
    ap.add_argument("--warps", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--chunks", nargs="+", default=["all", str(id_lookup.CHUNK or "all")],
                    help="positions sorted by id together: a number, or all (every position at once)")
    ap.add_argument("--silence", type=float, default=0.3, help="fraction of the synthetic ids in the silence class")
    ap.add_argument("--ids", nargs="+", choices=["synthetic", "piano"], default=["synthetic"],
                    help="whose ids: uniform with silence, or windows of the piano training audio")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16",
                    help="the output gradient's: bf16 (the trainer's bf16 step) or fp32 (its TF32 step, where the "
                         "kernel took 3.3 ms against 1.2 in bf16 on an H100, with the tile timed in bf16)")
    ap.add_argument("--reduces", nargs="+", choices=id_lookup.REDUCES, default=[id_lookup.REDUCE],
                    help="how the pieces' sums reach the table: added atomically, or stored and added by class")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="small shapes (for a CPU run in Triton's interpreter)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    tiles = [parse_tile(t) for t in a.tiles]
    chunks = list(dict.fromkeys(parse_chunk(c) for c in a.chunks))
    if not 0 <= a.silence < 1:
        ap.error(f"--silence {a.silence}: expected a fraction in [0, 1)")
    device = torch.device(a.device)
    # the piano Seq-U-Net's training shape: batch 16, 36,857 input samples, 180 channels stored as 192, k = 5
    batch, length, channels, k, classes = (2, 300, 200, 5, 256) if a.quick else (16, 36857, 192, 5, 256)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    synthetic, grad = make_inputs(batch, length, channels, k, classes, a.silence, device, dtype)
    if not id_lookup.fusable(synthetic, grad, grad.dtype):
        ap.error(f"the Triton lookup cannot run on {device} (a CUDA GPU, or Triton's interpreter on a CPU)")
    # the same values channels-first: (batch, c, n) with the time axis contiguous
    grads = {"channels_last": grad, "channels_first": grad.contiguous()}
    rows = []
    for source in a.ids:
        ids = synthetic if source == "synthetic" else piano_ids(batch, length).to(device)
        for layout in dict.fromkeys(a.layouts):
            rows += time_sorted(ids, grads[layout], k, classes, source, tiles, a.warps, chunks, device, a.reps,
                                dict.fromkeys(a.reduces))
    ids = synthetic
    # what the lookup replaces: embedding_bag's backward of the same table, from the same gradient
    table = torch.randn(classes * k, channels, device=device, requires_grad=True)
    rows_of = (ids.unfold(1, k, 1) * k + torch.arange(k, device=device)).reshape(-1, k)    # [t, j]: ids[t + j]
    bag = F.embedding_bag(rows_of, table, mode="sum").view(batch, -1, channels)
    upstream = grad.transpose(1, 2).float()
    t = timed(lambda: torch.autograd.grad(bag, table, upstream, retain_graph=True), device, a.reps)
    rows.append({"kind": "embedding_bag", "ids": "synthetic", "tile": None, "warps": None, "chunk": None,
                 "default": False,
                 "time_median_s": t, "gradient_bytes": upstream.numel() * upstream.element_size()})
    print(f"embedding_bag backward  {t * 1e3:8.3f} ms", flush=True)
    meta = {**run_metadata(device), "batch": batch, "length": length, "channels": channels, "k": k,
            "classes": classes, "ids": a.ids, "silence": a.silence, "quick": a.quick, "reps": a.reps,
            "default_chunk": id_lookup.CHUNK, "layouts": a.layouts,
            "dtype": str(dtype).removeprefix("torch.")}
    write_bench(a.out, {"meta": meta, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
