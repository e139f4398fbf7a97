"""Complexity sweep: Seq-U-Net vs WaveNet as the input length and the depth grow (paper section 4).

For the raw-audio pair of Table 2 (residual Seq-U-Net and WaveNet, receptive fields matched level by level), two
sweeps, both models in the same process on the same device:

* length: the paper's depth (Seq-U-Net L = 11, WaveNet 4 x 13), outputs per window from 1024 to 196608;
* depth: a fixed input of 131072 samples, Seq-U-Net L = 2..11 against WaveNet with the matching receptive field.

Per point: the analytic activation counts, the tensors saved for backward (counted, per sequence), and a full
training step's synchronised median time and peak allocated memory (``sequnet.analysis.complexity.time_training_step``,
the same loop as ``benchmarks/training.py``). The notebook ``notebooks/complexity.md`` plots the JSON when it is
committed as ``results/bench/complexity*.json``.

    python benchmarks/complexity.py --device cuda --out results/bench/complexity.json     # ~2 min on an H100
    python benchmarks/complexity.py --device cpu --quick                                  # seconds, smoke plan
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sequnet.analysis import complexity, sweeps  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402


def table(rows) -> str:
    lines = ["| sweep | model | L | input | outputs | activations / I | saved MiB / seq | ms/step | peak MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mem = f"{r['peak_memory_mib']:.1f}" if r["peak_memory_mib"] else "-"
        lines.append(f"| {r['sweep']} | {r['arch']} | {r['levels']} | {r['input_length']:,} | "
                     f"{r['output_length']:,} | {r['activations'] / r['input_length']:.2f} | "
                     f"{r['saved_bytes'] / 2 ** 20:.1f} | {r['time_median_s'] * 1e3:.2f} | {mem} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--plan", default="paper", choices=list(sweeps.SWEEP_PLANS),
                    help="model sizes and sweep ranges (paper: Table 2's models, for a GPU)")
    ap.add_argument("--quick", action="store_true", help="the smoke plan: tiny models, seconds on a CPU")
    ap.add_argument("--steps", type=int, help="timed steps per point (default: the plan's)")
    ap.add_argument("--warmup", type=int, help="untimed steps per point (default: the plan's)")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="cudnn autotuning (the paper's setting); costs 12-17 s per new shape on an H100/H200 and "
                         "did not make the steps faster there, so the sweep leaves it off by default")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    name = "smoke" if args.quick else args.plan
    plan = sweeps.SWEEP_PLANS[name]
    plan = dataclasses.replace(plan, steps=args.steps or plan.steps, warmup=args.warmup or plan.warmup)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark     # when on, autotuning falls in the warm-up steps
    rows = sweeps.sweep(plan, device)
    print(table(rows))
    if args.out:
        meta = {**complexity.run_metadata(device), "plan": name, "quick": name != "paper",
                "config": dataclasses.asdict(plan), "cudnn_benchmark": args.cudnn_benchmark,
                "tf32_conv": torch.backends.cudnn.allow_tf32}
        write_bench(args.out, {"meta": meta, "rows": rows})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
