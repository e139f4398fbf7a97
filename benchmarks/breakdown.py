"""Where the memory and time of the Table 1 language and music pairs go, to explain their Seq-U-Net/TCN ratios.

The paper measured Seq-U-Net/TCN time ratios of 0.41 (char-PTB) and 0.49 (word-PTB) and memory ratios of 0.68 and
0.66 on a GTX 1080; on an H200 we measure about 0.8-0.96 and 0.9-1.0. This script takes each model's training step
apart, both models of a pair in the same process on the same GPU, in float32 as Table 1:

memory (MiB)   parameters, gradients and Adam's two moments (from the parameter count), the batch, the tensors the
               forward pass saves for the backward pass (counted through ``saved_tensors_hooks``, deduplicated by
               storage), the measured eager peak, the remainder of that peak (cuBLAS/cuDNN workspaces, temporaries
               of the backward pass, the allocator's rounding), and the extra peak of a step replayed from a CUDA
               graph (its private pool)
time           eager and graphed medians, GPU operations per step (kernels, copies and fills, from torch.profiler),
               FLOPs per step (``torch.utils.flop_counter``, forward and backward) and the TFLOP/s they make; a step
               whose graphed time is close to ``operations x a few microseconds`` is launch-bound, not FLOP-bound
sweep          the char-PTB and word-PTB pairs at larger batches (and longer windows), where the work per kernel
               grows: where the paper's ratios reappear

    python benchmarks/breakdown.py --out results/bench/breakdown-h200.json       # on the GPU machine
    python benchmarks/breakdown.py --device cpu --quick                          # a smoke run on the CPU

Music pairs train on one sequence of the training set's mean length, as benchmarks/training.py does.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training import MUSIC_MEAN_LENGTH, loss_fn, make_batch, setting_for  # noqa: E402

import sequnet  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402
from sequnet.analysis.complexity import (count_saved_activations, run_metadata, time_training_step,  # noqa: E402
                                         training_step)

MIB = 2 ** 20
PAIRS = ("char_ptb", "word_ptb", "jsb", "nottingham", "muse")
ARCHS = ("tcn", "sequnet")
# (task, batch, window multiple): the language pairs' sweep; 1 = the paper's batch 16 and window
SWEEP = [(task, batch, mult) for task in ("char_ptb", "word_ptb") for batch, mult in
         ((16, 1), (64, 1), (256, 1), (16, 4))]


def tensor_mib(tensors) -> float:
    return sum(t.numel() * t.element_size() for t in tensors) / MIB


def static_memory(model: torch.nn.Module) -> dict:
    """Parameters, their gradients and Adam's two moments (float32 like the parameters)."""
    params = tensor_mib(model.parameters())
    return {"params_mib": params, "grads_mib": params, "adam_mib": 2 * params}


def flops_per_step(model, x, y, setting) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss_fn(setting, model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def gpu_operations_per_step(model, x, y, setting, steps: int = 3) -> float | None:
    """GPU operations (kernels, memcpy, memset) per eager training step, from torch.profiler."""
    if x.device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    step = training_step(model, x, y, lambda logits, target: loss_fn(setting, logits, target))
    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA) / steps


def stretch(setting, mult: int):
    """``setting`` with ``mult`` times as many scored outputs per window (language tasks)."""
    return setting if mult == 1 else setting.replace(target_output=setting.target_output * mult)


def measure(task: str, arch: str, device, batch: int, mult: int, steps: int, warmup: int, quick: bool) -> dict:
    setting = stretch(setting_for(task, arch, quick), mult)
    torch.manual_seed(0)
    model = sequnet.build_model(setting).to(device).train()
    x, y = make_batch(setting, batch, device, quick)
    row = {"task": task, "arch": arch, "batch": batch, "window_multiple": mult, "input_length": x.shape[-1],
           "params": sequnet.count_parameters(model), **static_memory(model),
           "batch_mib": tensor_mib([x, y]), "saved_activations_mib": count_saved_activations(model, x).bytes / MIB,
           "flops_per_step": flops_per_step(model, x, y, setting)}
    row["gpu_operations_per_step"] = gpu_operations_per_step(model, x, y, setting)
    lossf = lambda logits, target: loss_fn(setting, logits, target)   # noqa: E731
    eager = time_training_step(model, x, y, lossf, steps, warmup)
    row.update(eager_time_s=eager["time_median_s"], eager_peak_mib=eager["peak_memory_mib"])
    # music sequences differ in length, so the trainer never captures their steps; the benchmark does the same
    if device.type == "cuda" and task not in MUSIC_MEAN_LENGTH:
        graphed = time_training_step(model, x, y, lossf, steps, warmup, cuda_graph=True)
        row.update(graph_time_s=graphed["time_median_s"], graph_peak_mib=graphed["peak_memory_mib"])
    if row["eager_peak_mib"] is not None:
        known = sum(row[k] for k in ("params_mib", "grads_mib", "adam_mib", "batch_mib", "saved_activations_mib"))
        row["remainder_mib"] = row["eager_peak_mib"] - known
    best = row.get("graph_time_s", row["eager_time_s"])
    row["tflops_per_s"] = row["flops_per_step"] / best / 1e12
    if row["gpu_operations_per_step"]:
        row["us_per_operation"] = best / row["gpu_operations_per_step"] * 1e6
    return row


def add_ratios(rows: list[dict]) -> None:
    """Seq-U-Net over TCN for each measured quantity, on the Seq-U-Net row of each (task, batch, window)."""
    by_key = {(r["task"], r["batch"], r["window_multiple"], r["arch"]): r for r in rows}
    for r in rows:
        base = by_key.get((r["task"], r["batch"], r["window_multiple"], "tcn"))
        if r["arch"] != "sequnet" or base is None:
            continue
        for key in ("eager_time_s", "graph_time_s", "eager_peak_mib", "graph_peak_mib", "saved_activations_mib",
                    "params_mib", "flops_per_step", "gpu_operations_per_step"):
            if r.get(key) and base.get(key):
                r[f"ratio_{key}"] = r[key] / base[key]


def table(rows: list[dict]) -> str:
    head = ("| task | model | batch | window x | params MiB | grads+Adam MiB | saved act. MiB | eager peak MiB | "
            "remainder MiB | graph peak MiB | GPU ops/step | GFLOP/step | eager ms | graph ms | TFLOP/s |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def f(v, fmt=".1f"):
        return "-" if v is None else format(v, fmt)

    lines = [head]
    for r in rows:
        lines.append(f"| {r['task']} | {r['arch']} | {r['batch']} | {r['window_multiple']} | {f(r['params_mib'])} | "
                     f"{f(r['grads_mib'] + r['adam_mib'])} | {f(r['saved_activations_mib'])} | "
                     f"{f(r['eager_peak_mib'])} | {f(r.get('remainder_mib'))} | {f(r.get('graph_peak_mib'))} | "
                     f"{f(r['gpu_operations_per_step'], '.0f')} | {r['flops_per_step'] / 1e9:.1f} | "
                     f"{r['eager_time_s'] * 1e3:.2f} | {f(r.get('graph_time_s') and r['graph_time_s'] * 1e3, '.2f')} | "
                     f"{r['tflops_per_s']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="tiny models and a short sweep, for a CPU smoke run")
    ap.add_argument("--no-sweep", action="store_true", help="only the pairs at the paper's batch and window")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    plan = [(task, 16 if task not in MUSIC_MEAN_LENGTH else 1, 1) for task in PAIRS]
    if not args.no_sweep:
        plan += [p for p in SWEEP if p[1:] != (16, 1)]
    if args.quick:
        plan = list(dict.fromkeys((task, min(batch, 4), 1) for task, batch, mult in plan if mult == 1))
    meta = {**run_metadata(device), "quick": args.quick, "steps": args.steps, "warmup": args.warmup,
            "dtype": "float32", "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "planned": len(plan)}
    rows = []
    for i, (task, batch, mult) in enumerate(plan, 1):
        for arch in ARCHS:
            row = measure(task, arch, device, batch, mult, args.steps, args.warmup, args.quick)
            rows.append(row)
            print(f"{task:10s} {arch:8s} batch {batch:4d} x{mult}: eager {row['eager_time_s'] * 1e3:8.2f} ms, "
                  f"peak {row['eager_peak_mib'] or float('nan'):8.1f} MiB", flush=True)
        add_ratios(rows)
        if args.out:     # after every pair, whole: a run stopped by its call's time limit keeps the pairs it measured
            write_bench(args.out, {"meta": {**meta, "measured": i, "complete": i == len(plan)}, "rows": rows})
    print(table(rows))
    if args.out:
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
