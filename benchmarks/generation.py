"""Generation benchmark: samples per second of cached step-wise generation, Seq-U-Net against WaveNet.

Both of the paper's piano models (random weights: speed does not depend on them) run in the same process on the
same device, at batch 1 and 64, eagerly, with one CUDA graph per step and with multi-step graphs, in float32 and in
reduced precision. Each timed run samples a whole number of Seq-U-Net clock cycles (1024 steps each, so every
update pattern is counted at its true frequency), after warm-up steps and graph capture, between
``torch.cuda.synchronize()`` calls; the median of the repeats is reported. Reduced precision (bf16, fp16 for the
cached weights and windows) is also checked for accuracy: the largest logit deviation from float32 over
teacher-forced steps fed the same ids.

    python benchmarks/generation.py --device cuda --out results/bench/generation.json
    python benchmarks/generation.py --device cpu --quick              # a smoke run on the CPU
    python benchmarks/generation.py --batches 1 4 8 16 20 64 --kernels rowdot splitk cublas --modes graphs \
        --dtypes float32 --out results/bench/generation-kernels-h200.json   # which products at which batch
    python benchmarks/generation.py --models sequnet wavenet --batches 1 8 28 64 --kernels auto chain --modes graphs \
        --out results/bench/generation-wavenet-chain-h200.json   # WaveNet's layers in one launch against the rule
    python benchmarks/generation.py --batches 1 64 --pdl off on --modes graphs --out results/bench/generation-pdl.json
        # each kernel launched plainly and with programmatic dependent launch (the default on Hopper), side by side
    python benchmarks/generation.py --batches 1 64 --step-kernels on off --modes graphs --dtypes bfloat16 \
        --out results/bench/generation-step-kernels.json   # a step's bookkeeping in Triton launches or torch ops
    python benchmarks/generation.py --batches 1 64 --step-kernels own head --modes graphs --dtypes bfloat16 \
        --out results/bench/generation-start-in-head.json  # each step's start in its own launch or the head before
    python benchmarks/generation.py --batches 1 64 --modes graphs --dtypes bfloat16 --accuracy-steps 0 \
        --profile-steps 1024 --out results/bench/generation-profile.json   # each row's kernels, durations and gaps
    python benchmarks/generation.py --batches 28 64 --splitk-tiles 64x64 32x64 128x64 64x32 64x128 --modes graphs \
        --dtypes bfloat16 --out results/bench/generation-splitk-tiles.json   # split-K's rows x columns a program

The official code generated 327 samples/s (Seq-U-Net) and 87 samples/s (WaveNet) at batch 1 on an H200.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kernel_trace import summarise, summary_lines, trace_kernels  # noqa: E402
import sequnet  # noqa: E402
from sequnet.core.generation import init_state, kernels, splitk  # noqa: E402
from sequnet.core.generation.state import InferenceState  # noqa: E402
from sequnet.core.generation.tuning import TOO_BIG  # noqa: E402
from sequnet.core.models import OneHotModel, ResSeqUNet, ResSeqUNetConfig, WaveNet, WaveNetConfig  # noqa: E402
from sequnet.core.triton_guard import pdl_options  # noqa: E402
from sequnet.analysis.benchmarks import kernel_name, write_bench  # noqa: E402

OFFICIAL_BATCH1 = {"sequnet": 327.0, "wavenet": 87.0}      # samples/s, official code on an H200 (DESIGN.md 7)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def build(arch: str, tiny: bool) -> torch.nn.Module:
    if not tiny:
        return sequnet.paper_model("piano_audio", arch)
    if arch == "sequnet":
        return OneHotModel(ResSeqUNet(ResSeqUNetConfig(256, 16, 4, 256, 5, 2)), 256)
    return OneHotModel(WaveNet(WaveNetConfig(256, blocks=2, layers=5, residual_channels=16, skip_channels=32,
                                             end_channels=32)), 256)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def speed(model, arch: str, device, batch: int, dtype, modes, steps: dict, warmup: int, repeats: int,
          chunk: int, kernel: str = "auto", profile_steps: int = 0, aligned: bool = True) -> list[dict]:
    """Time ``steps[mode]`` sampled steps per repeat, per mode, on one state (the save pass is timed apart), its
    products pinned to ``kernel`` ("auto": the batch rule); with ``profile_steps`` on a GPU, then profile that many
    steps of the multi-step graphs kernel by kernel (``kernel_trace``) into the row's "profile"."""
    g = torch.Generator(device).manual_seed(0)
    prime = torch.randint(0, 256, (batch, 16), device=device, generator=g)
    sync(device)
    t0 = time.perf_counter()
    state = init_state(model, prime, dtype=dtype, kernel=kernel)
    sync(device)
    save_s = time.perf_counter() - t0
    state.CHUNK = chunk
    ops = state.ops_per_step()      # of a multi-step graph's step (a start run by the head before counts as none)
    rows = []
    for mode in modes:
        graphs, n = mode != "eager", steps[mode]
        # "graphs-step": one graph per step, replayed from Python (the multi-step graphs switched off)
        state.CHUNK = 1 << 62 if mode == "graphs-step" else chunk
        # Every graph is captured before the clock starts: a Seq-U-Net's update patterns repeat only every two
        # clock cycles (2,048 steps for the piano model). With 256 warm-up steps and two 1,024-step repeats, each
        # repeat captured one or two 16-step graphs, and the run measured the Seq-U-Net 20-30 % below one whose
        # median repeat captured none (results/logs/2026-12-02g-h200-suite-and-generation.tar.xz).
        warm_n = max(warmup, state.period + chunk) if graphs else warmup
        t0 = time.perf_counter()
        state.generate(warm_n, temperature=0.95, generator=g, progress=False, cuda_graphs=graphs)
        # The timed steps start where a multi-step graph does, so that each replays one, as a long generation's
        # steps do. A fresh state's first sample feeds no step, so until 2026-12-07 they started one step short:
        # each repeat then ran its first step and its last 15 as one-step graphs, 16 of 2,048 (the profile of call
        # 28 found them). ``aligned=False`` times it that way again, for comparison.
        ahead = 0 if mode != "graphs" or not aligned else -state.steps % chunk
        if ahead:
            state.generate(ahead, temperature=0.95, generator=g, progress=False, cuda_graphs=graphs)
            warm_n += ahead
        sync(device)
        warm_s = time.perf_counter() - t0
        on_chunk = mode == "graphs" and state.steps % chunk == 0
        times = []
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            state.generate(n, temperature=0.95, generator=g, progress=False, cuda_graphs=graphs)
            sync(device)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        rows.append({"model": arch, "batch": batch, "dtype": str(dtype).removeprefix("torch."), "mode": mode,
                     "samples_per_s": batch * n / t, "steps_per_s": n / t, "step_us": t / n * 1e6,
                     "best_samples_per_s": batch * n / min(times), "steps": n, "repeats": repeats,
                     "save_pass_s": save_s, "warmup_steps": warm_n, "warmup_and_capture_s": warm_s,
                     "levels_per_step": state.mean_levels_per_step, "layers_per_step": state.mean_layers_per_step,
                     "kernel": state.kernel, "fused_activation": state.fused, "splitk_gemv": state.gemv,
                     "rowdot": state.rowdot, "ops_per_step": ops, "us_per_op": t / n * 1e6 / ops,
                     "pdl": pdl_options(device)["PDL"] and state.fused, "step_kernels": state.step_fused,
                     "start_in_head": mode == "graphs" and state._folds_start(),
                     "chunk": state.CHUNK if mode == "graphs" else None,
                     "chunk_aligned": on_chunk,
                     # split-K's activation runs (rowdot's kernels sum no splits)
                     "splits_unrolled": state.gemv and not state.rowdot and splitk.splits_unrolled(),
                     "splitk_tile": tile_name(splitk.TILE) if state.gemv else None,
                     "rowdot_programs": kernels.ROWDOT_PROGRAMS if state.rowdot else None})
        r = rows[-1]
        print(f"{arch:8s} batch {batch:3d} {r['dtype']:9s} {mode:11s} {state.kernel:6s}: "
              f"{r['samples_per_s']:12,.0f} samples/s "
              f"({r['step_us']:8.1f} us/step, {r['layers_per_step']:.1f} layers/step, {ops:.1f} ops/step)", flush=True)
        if profile_steps and mode == "graphs" and device.type == "cuda":
            # after the timing, so the profiler's cost stays out of it; the steps start where the timed ones did
            # (where a multi-step graph does, unless --unaligned)
            trace = trace_kernels(lambda: state.generate(profile_steps, temperature=0.95, generator=g,
                                                         progress=False, cuda_graphs=True), device)
            r["profile"] = summarise(trace, profile_steps)
            print("\n".join(summary_lines(r["profile"])), flush=True)
    del state
    return rows


def accuracy(model, arch: str, device, dtype, steps: int, batch: int = 4) -> dict:
    """Teacher-forced: feed the same random ids to a float32 state and a reduced-precision one."""
    g = torch.Generator(device).manual_seed(1)
    ids = torch.randint(0, 256, (batch, 16 + steps), device=device, generator=g)
    ref, low = init_state(model, ids[:, :16], dtype=torch.float32), init_state(model, ids[:, :16], dtype=dtype)
    dev = scale = agree = 0.0
    for s in range(steps):
        a, b = (ref.logits.float(), low.logits.float()) if s == 0 else (ref.step(ids[:, 16 + s - 1]).float(),
                                                                         low.step(ids[:, 16 + s - 1]).float())
        dev = max(dev, (a - b).abs().max().item())
        scale = max(scale, a.abs().max().item())
        agree += (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    prob = (torch.softmax(a, -1) - torch.softmax(b, -1)).abs().sum(-1).max().item()
    return {"model": arch, "dtype": str(dtype).removeprefix("torch."), "steps": steps, "batch": batch,
            "max_abs_logit_dev": dev, "max_abs_logit": scale, "rel_dev": dev / scale,
            "argmax_agreement": agree / steps, "last_step_total_variation": prob / 2}


_SAME = ("batch", "dtype", "mode", "kernel", "pdl", "step_kernels", "start_in_head", "chunk",   # a ratio's rows
         "splitk_tile", "rowdot_programs")


def _tile_arg(tile: str) -> str:
    splitk_tile(tile)           # refused here, before any model is built
    return tile


def _programs_arg(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"rowdot programs {text!r}: expected a whole number of at least 1, such as 64")
    return int(text)


def splitk_tile(tile: str | None) -> tuple[int, int] | None:
    """split-K's ``splitk.TILE`` for a tile "ROWSxCOLUMNS" (rows of W and output columns a program), "rule" (None:
    each product's tile by ``splitk.tile_for``'s rule) or None (the module's own), refused with what is allowed
    where the kernel could not run it."""
    if tile is None:
        return splitk.TILE
    if tile == "rule":
        return None
    rows, _, cols = tile.partition("x")
    # the kernel loads its rows as two tiles of half a chunk, each at least tl.dot's 16
    if not (rows.isdigit() and cols.isdigit()) or int(rows) < 32 or int(cols) < 16 or any(
            int(v) & (int(v) - 1) for v in (rows, cols)):
        raise argparse.ArgumentTypeError(f"split-K tile {tile!r}: expected rule or ROWSxCOLUMNS, powers of 2, "
                                         "at least 32 rows and 16 columns, such as 64x64")
    return int(rows), int(cols)


def tile_name(tile: tuple[int, int] | None) -> str:
    """A row's "splitk_tile": "ROWSxCOLUMNS", or "rule"."""
    return "rule" if tile is None else f"{tile[0]}x{tile[1]}"


def run(device, archs, batches, dtypes, modes, steps, warmup, repeats, acc_steps, tiny,
        chunks: tuple[int, ...] = (InferenceState.CHUNK,), kernel_names: tuple[str, ...] = ("auto",),
        pdl: tuple[str, ...] = ("on",), step_kernels: tuple[str, ...] = ("on",),
        tiles: tuple[str | None, ...] = (None,), programs: tuple[int | None, ...] = (None,),
        profile_steps: int = 0, aligned: bool = True) -> dict:
    torch.manual_seed(0)
    models = {a: build(a, tiny).to(device).eval() for a in archs}
    rows, acc = [], []
    before = {v: os.environ.get(v) for v in ("SEQUNET_PDL", "SEQUNET_STEP_KERNELS", "SEQUNET_START_IN_HEAD")}
    tile_before, programs_before = splitk_tile(None), kernels.ROWDOT_PROGRAMS
    for dtype in dtypes:
        for batch in batches:
            for arch in archs:
                done = set()
                for kernel, launch, steps_on, chunk, tile, least in itertools.product(
                        kernel_names, pdl, step_kernels, chunks, tiles, programs):
                    try:
                        name = (kernel if kernel == "chain" and arch == "wavenet"      # WaveNet's one-launch layers
                                else kernels.resolved_kernel(kernel, device, dtype, batch))
                        # the first tile (and least of programs) stands for every kernel; the others change
                        # split-K's products (rowdot's) only
                        tile = tile if name == "splitk" else tiles[0]
                        least = least if name == "rowdot" else programs[0]
                        if ((name, launch, steps_on, chunk, tile, least) in done
                                or (name in ("chain", "torch") and launch == "on" and "off" in pdl)
                                or (name == "torch" and steps_on == "off" and "on" in step_kernels)
                                or (name in ("chain", "torch")            # no start kernel to place
                                    and (steps_on == "head" or (steps_on == "own" and "on" in step_kernels)))):
                            continue          # "auto" is one of the pinned kernels; no PDL or step kernels in torch
                        done.add((name, launch, steps_on, chunk, tile, least))
                        # read at the state's build (the partial sums' buffer) and at each launch
                        splitk.TILE = splitk_tile(tile)
                        kernels.ROWDOT_PROGRAMS = programs_before if least is None else least     # at each launch
                        os.environ["SEQUNET_PDL"] = "1" if launch == "on" else "0"     # read at each launch
                        # read by the state
                        os.environ["SEQUNET_STEP_KERNELS"] = "0" if steps_on == "off" else "1"
                        # "on": where the library puts the start (by default the head in bf16, or as the caller's
                        # SEQUNET_START_IN_HEAD says); "own", "head": there. Until 2026-12-07 "on" put it in its own
                        # launch, so the default runs timed that, not the library's default (their rows say
                        # start_in_head false)
                        if steps_on in ("head", "own"):
                            os.environ["SEQUNET_START_IN_HEAD"] = "1" if steps_on == "head" else "0"
                        elif before["SEQUNET_START_IN_HEAD"] is None:
                            os.environ.pop("SEQUNET_START_IN_HEAD", None)
                        else:
                            os.environ["SEQUNET_START_IN_HEAD"] = before["SEQUNET_START_IN_HEAD"]
                        if launch == "on" and not pdl_options(device)["PDL"] and "off" in pdl:   # no A/B here
                            raise ValueError("programmatic dependent launch needs a Hopper or newer CUDA GPU")
                        # the eager and one-graph-per-step modes have no chunk (timed with the first only) and
                        # no start in the head (a multi-step graph's)
                        chunk_modes = (modes if (chunk, tile, least) == (chunks[0], tiles[0], programs[0])
                                       and steps_on not in ("head", "own") else [m for m in modes if m == "graphs"])
                        if chunk_modes:
                            rows += speed(models[arch], arch, device, batch, dtype, chunk_modes, steps, warmup,
                                          repeats, chunk, kernel, profile_steps, aligned)
                    except (ValueError, *TOO_BIG) as err:   # not for this batch/GPU
                        print(f"{arch:8s} batch {batch:3d} {kernel}: skipped ({err})", flush=True)
                    finally:
                        splitk.TILE, kernels.ROWDOT_PROGRAMS = tile_before, programs_before
                        for v, value in before.items():
                            os.environ.pop(v, None)
                            if value is not None:
                                os.environ[v] = value
        if dtype != torch.float32 and acc_steps:
            for arch in archs:
                acc.append(accuracy(models[arch], arch, device, dtype, acc_steps))
                a = acc[-1]
                print(f"{arch:8s} {a['dtype']:9s} vs float32 over {acc_steps} steps: max |dlogit| "
                      f"{a['max_abs_logit_dev']:.3g} (max |logit| {a['max_abs_logit']:.3g}), argmax agreement "
                      f"{a['argmax_agreement']:.4f}", flush=True)
    ratios = []
    for r in rows:
        if r["model"] == "sequnet":
            w = [x for x in rows if x["model"] == "wavenet"
                 and all(x[k] == r[k] for k in _SAME)]
            if w:
                ratios.append({k: r[k] for k in _SAME}
                              | {"sequnet_over_wavenet": r["samples_per_s"] / w[0]["samples_per_s"]})
    return {"rows": rows, "accuracy": acc, "ratios": ratios,
            "params": {a: sequnet.count_parameters(m) for a, m in models.items()}}


def table(result: dict) -> str:
    lines = ["| model | batch | dtype | mode | kernel | samples/s | us/step | ops/step | us/op | "
             "x official (batch 1) | Seq-U-Net / WaveNet |", "|---|---:|---|---|---|---:|---:|---:|---:|---:|---:|"]
    ratio = {tuple(r[k] for k in _SAME): r["sequnet_over_wavenet"] for r in result["ratios"]}
    for r in result["rows"]:
        off = (f"{r['samples_per_s'] / OFFICIAL_BATCH1[r['model']]:.0f}" if r["batch"] == 1 else "")
        rat = ratio.get(tuple(r[k] for k in _SAME)) if r["model"] == "sequnet" else None
        lines.append(f"| {r['model']} | {r['batch']} | {r['dtype']} | {r['mode']} | {kernel_name(r)} | "
                     f"{r['samples_per_s']:,.0f} | "
                     f"{r['step_us']:.1f} | {r['ops_per_step']:.1f} | {r['us_per_op']:.2f} | {off} | "
                     f"{'' if rat is None else f'{rat:.2f}'} |")
    lines.append("")
    for a in result["accuracy"]:
        lines.append(f"{a['model']} {a['dtype']}: max |logit - float32 logit| = {a['max_abs_logit_dev']:.3g} over "
                     f"{a['steps']} teacher-forced steps (logits up to {a['max_abs_logit']:.3g}); "
                     f"argmax agreement {a['argmax_agreement']:.4f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=["sequnet", "wavenet"], choices=["sequnet", "wavenet"])
    ap.add_argument("--batches", nargs="+", type=int, help="default 1 64 (1 4 with --quick)")
    ap.add_argument("--dtypes", nargs="+", choices=list(DTYPES), help="default float32 bfloat16 float16")
    ap.add_argument("--modes", nargs="+", choices=["eager", "graphs-step", "graphs"],
                    help="eager; graphs-step: one CUDA graph per step; graphs: multi-step graphs of --chunk steps "
                    "(default: all three on CUDA, eager on CPU)")
    ap.add_argument("--chunk", nargs="+", type=int, default=[InferenceState.CHUNK],
                    help="steps per multi-step graph; several: side by side, a state each")
    ap.add_argument("--cycles", type=int, default=2, help="timed steps with CUDA graphs = cycles x 1024 (one "
                    "Seq-U-Net clock cycle, so that every update pattern counts at its true frequency)")
    ap.add_argument("--eager-cycles", type=int, default=1, help="the same for the eager path")
    ap.add_argument("--steps", type=int, help="timed steps per repeat in every mode (overrides the cycles)")
    ap.add_argument("--warmup", type=int, default=256,
                    help="untimed steps; with CUDA graphs at least the model's pattern period + --chunk, so that "
                         "no graph is captured on the clock")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--accuracy-steps", type=int, default=300, help="teacher-forced steps for the precision check")
    ap.add_argument("--quick", action="store_true", help="few steps and small batches (a CPU smoke run)")
    ap.add_argument("--tiny", action="store_true", help="tiny models instead of the paper's (for tests)")
    ap.add_argument("--kernels", nargs="+", default=["auto"], choices=["auto", *kernels.KERNELS, "chain"],
                    help="the products each state is pinned to (default auto: by batch); a kernel that cannot run "
                    "at a batch is skipped and said so")
    ap.add_argument("--pdl", nargs="+", default=["on"], choices=["off", "on"],
                    help="programmatic dependent launch of the generation kernels (SEQUNET_PDL): on (the default), "
                         "off, or both side by side; on needs a Hopper or newer GPU, elsewhere it runs as off (and "
                         "is skipped beside off)")
    ap.add_argument("--step-kernels", nargs="+", default=["on"], choices=["on", "off", "head", "own"],
                    help="a step's bookkeeping (window shifts, ring rows, the record of samples) in Triton launches "
                         "(on, the default: each step's start where the library puts it, triton_guard.start_in_head), "
                         "in torch operations (off: SEQUNET_STEP_KERNELS=0), or in Triton launches with each step's "
                         "start run by the head kernel before it in a multi-step graph (head: SEQUNET_START_IN_HEAD=1) "
                         "or in its own launch (own: =0), the graphs mode only; several side by side; Triton paths "
                         "only")
    ap.add_argument("--splitk-tiles", nargs="+", type=_tile_arg, default=[None], metavar="ROWSxCOLUMNS",
                    help="split-K's rows of W and output columns a program, or rule (each product's tile by "
                         "its shape, splitk.tile_for; default: the module's, "
                         f"{tile_name(splitk.TILE)}); several: side by side, split-K's states only, the graphs "
                         "mode only past the first")
    ap.add_argument("--rowdot-programs", nargs="+", type=_programs_arg, default=[None], metavar="N",
                    help="rowdot's element-wise tile: columns a program doubled while at least N programs remain "
                         f"(default: the module's, {kernels.ROWDOT_PROGRAMS}); several: side by side, rowdot's "
                         "states only, the graphs mode only past the first")
    ap.add_argument("--profile-steps", type=int, default=0, metavar="N",
                    help="after each multi-step graphs row's timing, profile N more steps kernel by kernel (a GPU "
                         "only; a multiple of --chunk, at least 1024 for every update pattern at its frequency)")
    ap.add_argument("--unaligned", action="store_true",
                    help="start the timed steps one short of a multi-step graph, as every run did until 2026-12-07 "
                         "(16 of each 2,048 timed steps then replay one-step graphs), for comparison")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    args = ap.parse_args(argv)
    if args.profile_steps < 0 or any(args.profile_steps % c for c in args.chunk):
        ap.error(f"--profile-steps {args.profile_steps}: expected 0 or a positive multiple of every --chunk "
                 f"({', '.join(map(str, args.chunk))}), so the profiled steps replay whole multi-step graphs")
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    steps = {"graphs": args.steps or args.cycles * 1024, "graphs-step": args.steps or args.cycles * 1024,
             "eager": args.steps or args.eager_cycles * 1024}
    batches, warmup, repeats, acc_steps = args.batches or [1, 64], args.warmup, args.repeats, args.accuracy_steps
    if args.quick:
        steps = {m: args.steps or 64 for m in steps}
        warmup, repeats, acc_steps = min(warmup, 8), 1, min(acc_steps, 16)
        batches = args.batches or [1, 4]
    dtypes = [DTYPES[d] for d in (args.dtypes or ["float32", "bfloat16", "float16"])]
    modes = args.modes or (["eager", "graphs-step", "graphs"] if cuda else ["eager"])
    result = run(device, args.models, batches, dtypes, modes, steps, warmup, repeats, acc_steps, args.tiny,
                 tuple(args.chunk), tuple(args.kernels), tuple(args.pdl), tuple(args.step_kernels),
                 tuple(args.splitk_tiles), tuple(args.rowdot_programs), args.profile_steps, not args.unaligned)
    print(table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "torch": torch.__version__,
                "cuda": torch.version.cuda, "triton": getattr(kernels.triton, "__version__", None),
                "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "config": {"models": "tiny" if args.tiny else {a: f"paper_model('piano_audio', '{a}')"
                                                               for a in args.models},
                           "params": result["params"], "batches": batches, "dtypes": [str(d) for d in dtypes],
                           "modes": modes, "kernels": args.kernels, "pdl": args.pdl,
                           "step_kernels": args.step_kernels, "chunk": args.chunk,
                           "splitk_tiles": args.splitk_tiles, "rowdot_programs": args.rowdot_programs,
                           "steps": steps, "profile_steps": args.profile_steps, "aligned": not args.unaligned,
                           "splits_unrolled": splitk.splits_unrolled(),
                           "warmup": warmup, "repeats": repeats,
                           "accuracy_steps": acc_steps, "temperature": 0.95, "quick": args.quick,
                           "cpu_threads": torch.get_num_threads()},
                "official_batch1_samples_per_s": OFFICIAL_BATCH1}
        write_bench(args.out, {"meta": meta} | result)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
