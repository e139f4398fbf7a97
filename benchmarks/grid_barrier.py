"""What a layer of batch-1 generation costs between its neighbours: a chain of small dependent layers launched one
kernel a layer, as generation runs them, against one persistent kernel whose programs run every layer and meet at
a grid barrier between two, side by side in one process.

At batch 1 a step of the piano Seq-U-Net runs about 11 kernels (rowdot, one a layer), each a few microseconds,
chained by programmatic dependent launch (PDL): on an H100 at 3c7b693 46,750 samples/s, 21.4 us a step, about
1.9 us a launch (results/bench/generation-start-in-head-h100.json). Issue 16's target, 50,000, needs 20 us. A
persistent kernel replaces each launch after the first by a grid barrier: every program counts itself in at one
counter (release, GPU scope) and waits until all have (acquire), as cooperative groups' grid sync does. Whether that
is cheaper than a dependent launch decides whether a persistent generation step is worth building; this measures
it on the shape of those layers, with no model around it.

Each layer is y' = tanh(W y), W (C x C) in bf16 (0.5 MiB at C = 512, near the piano Seq-U-Net's 900 x 360; 2 MiB
at C = 1,024), split over P programs of C / P rows. A chain of 11 layers stays in the L2 cache, as a step's weights
do, and so do 64 of 512 (32 MiB); 64 of 1,024 (128 MiB) are read from memory. Both ways load a layer's rows of W
before they wait for its input (the launches before their PDL wait, as rowdot does; the persistent kernel between
counting itself in at the barrier and waiting there), read y past the L1 cache, and compute each row alike, so
their outputs must agree bit for bit, which is checked before anything is timed. Each way is captured in a CUDA
graph (L launches, or one) and replayed; the time per replay over L is the cost of a layer.

    python benchmarks/grid_barrier.py --out results/bench/grid-barrier-h100.json
    python benchmarks/grid_barrier.py --device cpu --quick --out /tmp/gb.json   # Triton's interpreter (P = 1)

The programs of a persistent kernel must all be resident at once, or the barrier never opens: P is refused above
the GPU's multiprocessor count (one program fits on each), and on the CPU, whose interpreter runs the programs one
after another, above 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sequnet.analysis.benchmarks import write_bench  # noqa: E402
from sequnet.analysis.complexity import run_metadata  # noqa: E402
from sequnet.core.triton_guard import pdl_enter, pdl_options, tl, triton  # noqa: E402

WAYS = ("launches", "launches-plain", "persistent")   # PDL where the GPU has it; no PDL; one kernel

if triton is not None:   # pragma: no cover - GPU or Triton's interpreter only

    @triton.jit
    def _rows_of(w, rows, ks, C: tl.constexpr):
        """A program's rows of W (C x C, row-major)."""
        return tl.load(w + rows[:, None] * C + ks[None, :])

    @triton.jit
    def _apply(wt, y_in, y_out, rows, ks):
        """y_out[rows] = tanh(wt @ y_in) in float32 (tanh(v) = 2 sigmoid(2v) - 1), y_in read past the L1 cache."""
        y = tl.load(y_in + ks, cache_modifier=".cg").to(tl.float32)
        v = tl.sum(wt.to(tl.float32) * y[None, :], axis=1)
        tl.store(y_out + rows, (2.0 * tl.sigmoid(2.0 * v) - 1.0).to(y_out.dtype.element_ty))

    @triton.jit
    def _one_layer(w, y_in, y_out, C: tl.constexpr, BC: tl.constexpr, PDL: tl.constexpr):
        """One layer a launch: the weights before the PDL wait (no kernel writes them), then the input."""
        rows = tl.program_id(0) * BC + tl.arange(0, BC)
        ks = tl.arange(0, C)
        wt = _rows_of(w, rows, ks, C)
        pdl_enter(PDL)
        _apply(wt, y_in, y_out, rows, ks)

    @triton.jit
    def _arrive(count):
        """Count this program in at ``count``: its threads' stores first (a CTA barrier), then a release at GPU
        scope. The release waits for the program's earlier loads too, so the next layer's weights are loaded after
        it, while the program waits (:func:`_wait`)."""
        tl.debug_barrier()
        tl.atomic_add(count, 1, sem="release", scope="gpu")

    @triton.jit
    def _wait(count, target):
        """Wait until ``target`` programs have counted themselves in; everyone's stores are visible after it
        (acquire), to all of this program's threads (a CTA barrier)."""
        seen = tl.atomic_add(count, 0, sem="acquire", scope="gpu")
        while seen < target:
            seen = tl.atomic_add(count, 0, sem="acquire", scope="gpu")
        tl.debug_barrier()

    @triton.jit
    def _persistent(w, y, count, layers, C: tl.constexpr, BC: tl.constexpr):
        """Every layer in one launch: layer l reads y[l] and writes y[l + 1]; the next layer's rows of W are loaded
        between counting in and waiting at the barrier. The counter (count[0], and count[1] for the programs done)
        is zero again at the end: the last program to finish resets both, when no program waits at a barrier any
        more."""
        p = tl.num_programs(0)
        rows = tl.program_id(0) * BC + tl.arange(0, BC)
        ks = tl.arange(0, C)
        wt = _rows_of(w, rows, ks, C)
        for layer in range(layers):
            _apply(wt, y + layer * C, y + (layer + 1) * C, rows, ks)
            if layer + 1 < layers:
                _arrive(count)
                wt = _rows_of(w + (layer + 1) * C * C, rows, ks, C)
                _wait(count, (layer + 1) * p)
        tl.debug_barrier()
        done = tl.atomic_add(count + 1, 1, sem="acq_rel", scope="gpu")
        if done == p - 1:
            tl.atomic_xchg(count, 0, sem="relaxed", scope="gpu")
            tl.atomic_xchg(count + 1, 0, sem="relaxed", scope="gpu")


def check_programs(programs: int, width: int, device: torch.device, way: str) -> None:
    """Refuse a split the kernels cannot run, by name: rows a program a power of 2, and a persistent kernel's
    programs all resident at once."""
    if programs < 1 or width % programs or (width // programs) & (width // programs - 1):
        raise ValueError(f"--programs {programs}: must divide --widths {width} into a power of 2 of rows a program")
    if way != "persistent":
        return
    most = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 1
    if programs > most:
        where = (f"this GPU has {most} multiprocessors" if device.type == "cuda"
                 else "Triton's interpreter runs programs one after another")
        raise ValueError(f"--programs {programs}: a persistent kernel's programs must all run at once, and {where}; "
                         f"its barrier would never open. Give at most {most}")


def chain(way: str, w: torch.Tensor, y: torch.Tensor, count: torch.Tensor, programs: int):
    """The operation that runs every layer (w: (L, C, C); y: (L + 1, C), y[0] the input) the way named."""
    layers, width = w.shape[0], w.shape[1]
    bc = width // programs
    if way == "persistent":
        return lambda: _persistent[(programs,)](w, y, count, layers, C=width, BC=bc)
    options = pdl_options(y.device) if way == "launches" else {"PDL": False}

    def run():
        for layer in range(layers):
            _one_layer[(programs,)](w[layer], y[layer], y[layer + 1], C=width, BC=bc, **options)
    return run


def reference(w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each layer by torch from the kernels' own input to it (``y``, (L + 1, C), row 0 the chain's input), in
    float32 from the same bf16 weights, rounded to bf16 as the kernels store it: (L + 1, C). Layer by layer, not the
    chain from row 0: the kernels sum in another order, so an output may lie a bf16 unit off, and a chain 64 layers
    deep carried such units up to 0.28 away from torch's own chain while all three ways agreed bit for bit (H100,
    c7033da)."""
    ys = [y[0].float()]
    for layer in range(w.shape[0]):
        ys.append(torch.tanh(w[layer].float() @ y[layer].float()).to(torch.bfloat16).float())
    return torch.stack(ys)


def timed(run, device: torch.device, replays: int, repeats: int) -> float:
    """Median seconds of one run: on a GPU replayed from one CUDA graph ``replays`` times between two events,
    ``repeats`` times; on a CPU its wall clock."""
    run()                                   # compiles the kernels outside the graph
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]
    torch.cuda.synchronize(device)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        run()
    graph.replay()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(replays):
            graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / replays)
    return sorted(times)[len(times) // 2]


def measure(width: int, layers: int, programs: int, ways, device, count, replays: int, repeats: int) -> list:
    """Each way's rows for one chain: checked (against torch, bit for bit against each other, the counter back at
    zero) before any is timed."""
    w = (torch.randn(layers, width, width, device=device) * 1.5 / width ** 0.5).to(torch.bfloat16)
    y0 = torch.randn(width, device=device).to(torch.bfloat16)

    def fresh():
        y = torch.zeros(layers + 1, width, dtype=torch.bfloat16, device=device)
        y[0] = y0
        return y

    where = f"{programs} programs, {layers} layers of {width}"
    outputs = {}
    for way in ways:
        y = fresh()
        chain(way, w, y, count, programs)()
        outputs[way] = y
        if int(count.abs().sum()):
            raise RuntimeError(f"{way}, {where}: the barrier's counter is {count.tolist()} after a run, not zero")
    first = outputs[ways[0]]
    expected = reference(w, first)
    if not torch.allclose(first.float(), expected, rtol=0, atol=2e-2):
        raise RuntimeError(f"{ways[0]}, {where}: its outputs lie up to {(first.float() - expected).abs().max():.3g} "
                           f"from torch's")
    for way, y in outputs.items():      # the same rows computed alike: the same bits
        if not torch.equal(y, first):
            raise RuntimeError(f"{way}, {where}: its outputs differ from {ways[0]}'s by up to "
                               f"{(y.float() - first.float()).abs().max():.3g}")
    rows = []
    for way in ways:
        t = timed(chain(way, w, fresh(), count, programs), device, replays, repeats)
        rows.append({"way": way, "width": width, "layers": layers, "programs": programs,
                     "rows_a_program": width // programs, "time_median_s": t, "per_layer_s": t / layers})
        print(f"{way:15s} {width:5d} wide {layers:3d} layers {programs:4d} programs  {t * 1e6:8.2f} us  "
              f"{t / layers * 1e6:6.3f} us a layer", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--widths", type=int, nargs="+", default=[512, 1024],
                    help="C, a layer's inputs and outputs (powers of 2; the piano Seq-U-Net's layers at batch 1 "
                         "multiply 900 inputs by 360 columns)")
    ap.add_argument("--layers", type=int, nargs="+", default=[11, 64], help="layers in the chain")
    ap.add_argument("--programs", type=int, nargs="+", default=[64, 128], help="P, programs a layer")
    ap.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS))
    ap.add_argument("--replays", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a small chain on one program (Triton's interpreter)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    if triton is None or (device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1"):
        ap.error(f"needs Triton on {device.type}: a CUDA GPU, or Triton's interpreter on a CPU (Triton installed and "
                 f"TRITON_INTERPRET=1)")
    if a.quick:
        a.widths, a.layers, a.programs, a.replays, a.repeats = [64], [3], [1], 1, 1
    ways = list(dict.fromkeys(a.ways))
    try:
        for width in a.widths:
            if width < 16 or width & (width - 1):
                raise ValueError(f"--widths {width}: expected a power of 2, at least 16")
            for p in a.programs:
                for way in ways:
                    check_programs(p, width, device, way)
    except ValueError as e:
        ap.error(str(e))
    torch.manual_seed(0)
    count = torch.zeros(2, dtype=torch.int32, device=device)
    rows = [row for width in a.widths for layers in a.layers for p in a.programs
            for row in measure(width, layers, p, ways, device, count, a.replays, a.repeats)]
    meta = {**run_metadata(device), "widths": a.widths, "dtype": "bfloat16", "replays": a.replays,
            "repeats": a.repeats, "quick": a.quick, "cuda_graphs": device.type == "cuda",
            "pdl": pdl_options(device)["PDL"]}
    write_bench(a.out, {"meta": meta, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
