"""The committed piano-step benchmarks (``benchmarks/piano_step.py``: each variant of the piano models' training
step at batch 16, ``results/bench/piano-step*.json``) as tables against issue 16's targets, for the complexity
chapter. Their ratios, each model at its best, are in :func:`sequnet.analysis.benchmarks.plain_and_best_markdown`."""
from __future__ import annotations

from pathlib import Path

from sequnet.analysis.benchmarks import at_commit, load_bench


# the issue-16 targets for the piano Seq-U-Net's training step at batch 16 on one H200 (ms)
PIANO_STEP_TARGET_MS = {"bf16": 25.0, "fp32": 45.0}


def piano_step_markdown(bench_dir: Path) -> str:
    """The newest ``piano-step*.json`` files (benchmarks/piano_step.py), one table per GPU (times from different
    GPUs are not compared): each variant of the piano training step (batch 16, CUDA graph, channels-last), its
    time, FLOPs (those the GPU runs, padding included), TFLOP/s and peak memory, against the targets for the
    Seq-U-Net."""
    found = load_bench(bench_dir, "piano-step*.json", full_only=True)
    if not found:
        return ("No piano-step benchmark committed yet: run `python benchmarks/piano_step.py --out "
                "results/bench/piano-step.json`.")
    # the model's own FLOPs: the unpadded step's (padding runs more, on zeros)
    model_flops = {}
    for _, result in found:
        for r in result["rows"]:
            if "error" not in r and not r.get("pad") and "features=" not in r["spec"]:
                model_flops[r["arch"]] = min(model_flops.get(r["arch"], r["flops"]), r["flops"])
    devices = dict.fromkeys(result["meta"]["device"] for _, result in found)     # the newest file's GPU first
    return "\n\n".join(_piano_step_table([f for f in found if f[1]["meta"]["device"] == d], model_flops)
                       for d in devices)


# A piano-step row's "cudnn_plans", where its variant's name misstates them: cuDNN runs the plan it first chose for a
# convolution's shapes, by the autotuner or not (benchmarks/piano_step.py, check_autotuner), and those rows ran
# after another pass had chosen them (added to the files on 2026-12-06, after call 9 of speed_gpu_call.sh)
CUDNN_PLANS = {"heuristic": "cuDNN's plans fixed before the autotuner was on",
               "autotuned": "cuDNN's plans autotuned by an earlier variant"}


def _piano_step_table(found: list[tuple[Path, dict]], model_flops: dict) -> str:
    lines = ["| variant | ms/step | TFLOP/step run | TFLOP/s run | TFLOP/s of the model | peak MiB | "
             "target (Seq-U-Net) | file |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for path, result in found:
        for r in result["rows"]:
            if "error" in r:
                lines.append(f"| {r['spec']} | failed: {r['error'][:60]} | | | | | | `{path.name}` |")
                continue
            ms = r["time_median_s"] * 1e3
            target = PIANO_STEP_TARGET_MS["bf16" if r["bf16"] else "fp32"] if r["arch"] == "sequnet" else None
            mark = "" if target is None else f"≤ {target:.0f} ({'met' if ms <= target else 'not met'})"
            own = model_flops.get(r["arch"])
            own_rate = "–" if own is None else f"{own / r['time_median_s'] / 1e12:.0f}"
            spec = r["spec"] + (f" ({CUDNN_PLANS[r['cudnn_plans']]})" if "cudnn_plans" in r else "")
            # two decimals: a step of 25.04 ms is not the 25 ms target, which one decimal would hide
            lines.append(f"| {spec} | {ms:.2f} | {r['flops'] / 1e12:.2f} | {r['tflops_per_s']:.0f} | {own_rate} | "
                         f"{r['peak_memory_mib']:,.0f} | {mark} | `{path.name}` |")
    meta = found[0][1]["meta"]
    return (f"{meta['device']}, torch {meta['torch']}, {meta['date'][:10]}{at_commit(meta)}; batch {meta['batch']}, "
            f"{meta['steps']} timed steps after {meta['warmup']} warm-up steps, median.\n\n" + "\n".join(lines))
