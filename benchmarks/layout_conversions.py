"""How many cuDNN layout conversions (nchwToNhwc / nhwcToNchw kernels) one forward and backward pass of the paper's
piano Seq-U-Net runs, plain against switched (channels-last activations and the fused gate), in fp32 and under
bf16 autocast, at batch 1 and 16. A GPU only.

    python benchmarks/layout_conversions.py [--out FILE.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sequnet  # noqa: E402
from sequnet.analysis.complexity import layout_conversions, run_metadata  # noqa: E402
from sequnet.core.models import use_channels_last, use_fused_gate  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402


def piano_batch(batch: int, device: torch.device):
    setting = sequnet.paper_setting("piano_audio", "sequnet")
    torch.manual_seed(0)
    model = sequnet.build_model(setting).to(device).train()
    inputs, outputs = setting.input_output
    return (model, torch.randint(0, 256, (batch, inputs), device=device),
            torch.randint(0, 256, (batch, outputs), device=device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("layout_conversions.py needs a GPU (cuDNN's kernels are what it counts)")
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    rows = []
    for batch in (1, 16):
        for bf16 in (False, True):
            for switched in (False, True):
                model, ids, target = piano_batch(batch, device)
                if switched:
                    use_fused_gate(use_channels_last(model))
                with torch.autocast("cuda", torch.bfloat16, enabled=bf16):
                    found = layout_conversions(model, ids, target)
                rows.append({"batch": batch, "bf16": bf16, "switched": switched, "conversions": len(found)})
                print(f"batch {batch:2d} {'bf16' if bf16 else 'fp32'} {'switched' if switched else 'plain   '}: "
                      f"{len(found)} conversion kernels", flush=True)
    if args.out:
        write_bench(args.out, {"meta": run_metadata(device), "rows": rows})


if __name__ == "__main__":
    main()
