"""How far the fast piano training step computes from the plain float32 model, for both audio models: the relative
error of the loss and of the gradients (``sequnet.analysis.step_numerics``), in TF32 and in bf16, uncompiled and
compiled, with cuDNN's weight gradients and with the products' (``mm_wgrad``). One process, one GPU.

    python benchmarks/step_numerics.py --out results/bench/step-numerics-h100.json
    python benchmarks/step_numerics.py --device cpu --quick          # a smoke run on the CPU

Each row is one model, one way of running it (compiled or not, the weight gradients' source) and one mode, on the
paper's model at batch 1 (5,000 targets; ``--batch``), random ids, the weights of seed 0.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training import loss_fn, make_batch, setting_for  # noqa: E402
import sequnet  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402
from sequnet.analysis.complexity import run_metadata  # noqa: E402
from sequnet.analysis.step_numerics import fast_step_errors  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small models (a CPU smoke run)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--archs", nargs="+", default=["sequnet", "wavenet"])
    ap.add_argument("--compile", nargs="+", choices=["off", "on"], default=["off", "on"])
    ap.add_argument("--mm-wgrad", nargs="+", choices=["off", "on"], default=["off", "on"])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    meta = {**run_metadata(device), "batch": args.batch, "reference": "the unswitched model in float32, no TF32"}
    rows = []
    for arch in args.archs:
        setting = setting_for("piano_audio", arch, args.quick)
        torch.manual_seed(0)
        model = sequnet.build_model(setting).to(device).train()
        torch.manual_seed(1)
        ids, target = make_batch(setting, args.batch, device, args.quick)
        for compiled in args.compile:
            for mm in args.mm_wgrad:
                t0 = time.perf_counter()
                try:
                    errors = fast_step_errors(model, ids, target, lambda lg, t: loss_fn(setting, lg, t),
                                              compile_=compiled == "on", mm_weight_grad=mm == "on")
                except Exception as e:      # one way failing (e.g. compile) must not lose the others
                    print(f"{arch} compile={compiled} mm_wgrad={mm}: FAILED {type(e).__name__}: {e}", flush=True)
                    rows.append({"arch": arch, "compile": compiled == "on", "mm_wgrad": mm == "on",
                                 "error": f"{type(e).__name__}: {e}"})
                    continue
                for mode, e in errors.items():
                    rows.append({"arch": arch, "compile": compiled == "on", "mm_wgrad": mm == "on", "mode": mode,
                                 **e, "seconds": time.perf_counter() - t0})
                    print(f"{arch:8s} compile={compiled:3s} mm_wgrad={mm:3s} {mode}: "
                          f"loss {e['loss_relative_error']:.2e}  gradients {e['gradient_relative_error']:.2e}  worst {e['worst_parameter']} "
                          f"{e['worst_parameter_relative_error']:.2e}  least cosine {e['least_cosine']:.6f}",
                          flush=True)
                if args.out:
                    write_bench(args.out, {"meta": meta, "rows": rows})
        del model
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
