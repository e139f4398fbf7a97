"""Training-step benchmark: every pair of Table 1, both models in the same process on the same device.

For each task the script builds the paper's two models, feeds synthetic inputs of the paper's training shapes
(timing does not depend on the values) and measures a full training step: forward, loss, backward, Adam step.
Times are synchronised (``torch.cuda.synchronize``) medians after warm-up steps; memory is
``torch.cuda.max_memory_allocated`` after a reset, i.e. the allocator's peak of live tensors (parameters,
gradients, Adam state, activations, batch), as the paper's Table 1 reports it.

    python benchmarks/training.py --device cuda --out results/bench/training.json
    python benchmarks/training.py --device cpu --quick            # a smoke run on the CPU

Music tasks use one sequence per step of the training set's mean length (JSB 60, Nottingham 254, MuseData 468
frames), as the paper trains one sequence at a time. Piano is measured at batch 2 (the paper's Table 1) and 16.

``--channels-last`` and ``--fused-gate`` switch the audio models' speed-ups on (``on``, the flag alone), off
(the default) or measure both (``both``): channels-last activations for both audio models
(``sequnet.core.models.use_channels_last``), with the residual Seq-U-Net's 180 channels stored padded to 192 as the
trainer does (``sequnet.core.models.padding``; WaveNet's channel counts are multiples of 64 already), and the fused gate for both: the residual Seq-U-Net's gated residual
and WaveNet's gate (``sequnet.core.models.use_fused_gate``), so that a ratio compares the two models with the same
speed-ups. Every row records the switches its model ran with; a measurement that a switch does not change is
taken once. ``--crop-skips`` (off, on or both) computes WaveNet's skip outputs only at the samples its output
reads (``sequnet.core.models.use_cropped_skips``, WaveNet only: the Seq-U-Net has no such skips); the Seq-U-Net
is then measured again beside each WaveNet, so that each row's ratio has its own baseline, and its row names the
baseline's crop (``baseline_crop_skips``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sequnet  # noqa: E402
from sequnet.core.configs import baseline_arch  # noqa: E402
from sequnet.analysis.complexity import run_metadata, time_training_step, training_step  # noqa: E402
from sequnet.core.models import ResSeqUNet, use_channels_last, use_cropped_skips, use_fused_gate  # noqa: E402
from sequnet.core.models.padding import pad_channels  # noqa: E402
from sequnet.experiment.fast_path import CHANNEL_MULTIPLE  # noqa: E402
from sequnet.experiment.records import PAPER_TABLE1  # noqa: E402
from sequnet.experiment.tasks import mean_cross_entropy  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402

MUSIC_MEAN_LENGTH = {"jsb": 60, "nottingham": 254, "muse": 468, "piano_midi": 873}
PAIRS = {
    "char_ptb": ("tcn", "sequnet"), "word_ptb": ("tcn", "sequnet"), "muse": ("tcn", "sequnet"),
    "nottingham": ("tcn", "sequnet"), "jsb": ("tcn", "sequnet"), "piano_audio": ("wavenet", "sequnet"),
}
SWITCH_VALUES = {"off": (False,), "on": (True,), "both": (False, True)}
NO_SWITCHES = {"channels_last": False, "fused_gate": False, "crop_skips": False}


def setting_for(task: str, arch: str, quick: bool):
    """The paper's setting, or with ``quick`` one shrunk to what a CPU does in seconds (same architecture)."""
    s = sequnet.paper_setting(task, arch)
    if quick:
        s = s.replace(hidden=16, levels=min(s.levels, 4), emsize=min(s.emsize, 16) or 0,
                      target_output=min(s.target_output or 0, 64) or None)
    return s


def make_batch(setting, batch: int, device, quick: bool):
    """Synthetic (input, target) of the paper's training shapes."""
    if setting.kind == "music":
        t = MUSIC_MEAN_LENGTH[setting.task] if not quick else 32
        x = (torch.rand(batch, 88, t, device=device) < 0.05).float()
        return x, (torch.rand(batch, 88, t, device=device) < 0.05).float()
    inp, out = setting.input_output
    classes = setting.vocab or setting.classes
    return (torch.randint(0, classes, (batch, inp), device=device),
            torch.randint(0, classes, (batch, out), device=device))


def loss_fn(setting, logits, target):
    if setting.kind == "music":
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    # As the trainer scores it: every position of logits as long as the targets (a clear error otherwise). No
    # slice to the targets' length: even whole, a slice's backward zero-fills a channels-first gradient, which
    # cuDNN's backward of the output convolution copies to channels-last (ATen's ConvShared.cpp). By the strides
    # on the CPU, that is the 0.14 ms aten::_to_copy of [16, 256, 1, 5120] in the compiled bf16 piano Seq-U-Net's
    # step (H100, 2026-12-06), which the trainer's step has not; not yet confirmed on a GPU.
    return mean_cross_entropy(setting.task, logits, target)[0]


class OneHotInput(torch.nn.Module):
    """An audio model fed one-hot channels, as before its first convolution became a weight lookup
    (``sequnet.core.models.layers.input_conv``): the same parameters and result, for timing the two input paths."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model.head(self.model.body(self.model.embed(ids)))


def variants(channels_last: str = "off", fused_gate: str = "off", crop_skips: str = "off") -> list[dict]:
    """The switch settings to measure, from the options' values ("off", "on" or "both")."""
    return [{"channels_last": c, "fused_gate": f, "crop_skips": k} for c in SWITCH_VALUES[channels_last]
            for f in SWITCH_VALUES[fused_gate] for k in SWITCH_VALUES[crop_skips]]


def applicable(setting, variant: dict) -> dict:
    """The switches of ``variant`` that ``setting``'s model has: channels-last and the fused gate apply to both
    audio models (the WaveNet's fused gate is the gate alone, the Seq-U-Net's also adds the identity), the cropped
    skips to WaveNet alone."""
    audio = setting.kind == "audio"
    return {"channels_last": variant["channels_last"] and audio, "fused_gate": variant["fused_gate"] and audio,
            "crop_skips": variant["crop_skips"] and setting.arch == "wavenet"}


def label(row: dict) -> str:
    """The model's name with the switches it ran with."""
    on = [name.replace("_", "-") for name in NO_SWITCHES if row.get(name)]
    return row["arch"] + (f" ({', '.join(on)})" if on else "")


def build(setting, device, switches: dict = NO_SWITCHES):
    """``setting``'s model on ``device`` in training mode, with ``switches`` (as :func:`applicable` gives them)."""
    torch.manual_seed(0)
    model = sequnet.build_model(setting)
    if switches["channels_last"]:
        if isinstance(getattr(model, "body", None), ResSeqUNet):
            pad_channels(model, CHANNEL_MULTIPLE)          # as the trainer does with its fast kernels
        use_channels_last(model)
    if switches["fused_gate"]:
        use_fused_gate(model)
    if switches.get("crop_skips"):
        use_cropped_skips(model)
    return model.to(device).train()


def measure(setting, batch: int, device, steps: int, warmup: int, bf16: bool, compile_: bool, quick: bool,
            cuda_graph: bool = False, one_hot_input: bool = False, switches: dict = NO_SWITCHES):
    model = build(setting, device, switches)
    if one_hot_input and setting.kind == "audio":
        model = OneHotInput(model)
    x, y = make_batch(setting, batch, device, quick)
    timing = time_training_step(model, x, y, lambda logits, target: loss_fn(setting, logits, target), steps,
                                warmup, bf16, compile_, cuda_graph)
    return {"params": sequnet.count_parameters(model), **switches, **timing}


def profile(setting, batch: int, device, steps: int, bf16: bool, quick: bool, rows: int = 25,
            switches: dict = NO_SWITCHES) -> str:
    """Where a training step's time goes: torch.profiler's operator table over ``steps`` steps after one warm-up
    step, sorted by device time on CUDA (self CPU time on a CPU)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    model = build(setting, device, switches)
    x, y = make_batch(setting, batch, device, quick)
    step = training_step(model, x, y, lambda logits, target: loss_fn(setting, logits, target), bf16)
    step()
    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(device)
    sort = "cuda_time_total" if cuda else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort, row_limit=rows)


def run(tasks, device, steps, warmup, bf16, compile_, quick, piano_batches=(2, 16), cuda_graphs=False,
        one_hot_input=False, switch_variants=(NO_SWITCHES,), archs=None):
    rows, measured = [], {}
    for task in tasks:
        batches = piano_batches if task == "piano_audio" else ((1,) if task in MUSIC_MEAN_LENGTH else (16,))
        for batch in batches:
            for variant in switch_variants:
                pair = {}
                for arch in selected(task, archs):
                    s = setting_for(task, arch, quick)
                    switches = applicable(s, variant)
                    # the Seq-U-Net again beside another WaveNet: each ratio gets its own pair
                    key = (task, arch, batch, tuple(switches.values()), variant["crop_skips"])
                    if key in measured:                 # the same model as in an earlier variant
                        pair[arch] = measured[key]
                        continue
                    # as in training: music sequences differ in length, so their steps are never captured
                    graph = cuda_graphs and task not in MUSIC_MEAN_LENGTH
                    r = measure(s, batch, device, steps, warmup, bf16, compile_, quick, graph, one_hot_input,
                                switches)
                    r.update(cuda_graph=graph, bf16=bf16, task=task, arch=arch, batch=batch)
                    if task == "piano_audio" and arch == "sequnet":
                        r["baseline_crop_skips"] = variant["crop_skips"]
                    paper = PAPER_TABLE1.get((task, arch))
                    if paper:
                        r["paper_time_s"], r["paper_mem_mb"] = paper["time_s"], paper["mem_mb"]
                    pair[arch] = measured[key] = r
                    rows.append(r)
                    print(f"{task:12s} {label(r):36s} batch {batch:3d}: {r['time_median_s'] * 1e3:9.2f} ms/step, "
                          f"peak {r['peak_memory_mib'] or float('nan'):9.1f} MiB, {r['params']:,} params",
                          flush=True)
                if len(pair) < 2 or "time_ratio" in pair[PAIRS[task][1]]:
                    continue                            # half a pair, or a variant that changed neither model
                base, ours = (pair[a] for a in PAIRS[task])
                ours["time_ratio"] = ours["time_median_s"] / base["time_median_s"]
                if ours["peak_memory_mib"]:
                    ours["memory_ratio"] = ours["peak_memory_mib"] / base["peak_memory_mib"]
    return rows


def selected(task: str, archs=None) -> list[str]:
    """The models of ``task``'s pair to measure: both, or those of them in ``archs``."""
    return [a for a in PAIRS[task] if not archs or a in archs]


def table(rows) -> str:
    head = (f"| task | model | batch | params | ms/step | peak MiB | Seq-U-Net/baseline time | memory | "
            f"paper ratio time | memory |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [head]
    for r in rows:
        paper_t = paper_m = ""
        if r["arch"] == "sequnet" and (r["task"], "sequnet") in PAPER_TABLE1:
            base = baseline_arch(r["task"])
            p, q = PAPER_TABLE1[r["task"], "sequnet"], PAPER_TABLE1[r["task"], base]
            paper_t, paper_m = f"{p['time_s'] / q['time_s']:.2f}", f"{p['mem_mb'] / q['mem_mb']:.2f}"
        mem = f"{r['peak_memory_mib']:.1f}" if r["peak_memory_mib"] else "-"
        lines.append(f"| {r['task']} | {label(r)} | {r['batch']} | {r['params']:,} | {r['time_median_s'] * 1e3:.2f} "
                     f"| {mem} | {r.get('time_ratio', float('nan')):.2f} | {r.get('memory_ratio', float('nan')):.2f} "
                     f"| {paper_t} | {paper_m} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tasks", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward pass")
    ap.add_argument("--compile", action="store_true", help="torch.compile the models")
    ap.add_argument("--cuda-graphs", action="store_true",
                    help="replay each step from one captured CUDA graph, as the trainer does (CUDA only)")
    ap.add_argument("--piano-batches", type=int, nargs="+", default=[2, 16], metavar="B")
    ap.add_argument("--one-hot-input", action="store_true",
                    help="feed the audio models one-hot channels (the first convolution as a convolution, not the "
                         "weight lookup the models use), to time the two input paths")
    for name, what in [("channels-last", "channels-last activations for the audio models"),
                       ("fused-gate", "the fused gate (Triton on CUDA) for both audio models"),
                       ("crop-skips", "WaveNet's skip outputs only where its output reads them")]:
        ap.add_argument(f"--{name}", nargs="?", const="on", default="off", choices=list(SWITCH_VALUES),
                        help=f"{what}: on (the flag alone), off (default) or both, measured one after the other")
    ap.add_argument("--archs", nargs="+", choices=sorted({a for pair in PAIRS.values() for a in pair}),
                    help="measure only these models of each pair (then there is no ratio)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes for a CPU smoke run")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="let cuDNN autotune (costs 10-20 s per new shape; did not speed these models up on H100)")
    ap.add_argument("--profile", type=int, metavar="STEPS",
                    help="instead of timing, print torch.profiler's operator table for STEPS steps of every model "
                         "(piano at batch 16); with --out, also write it next to the JSON as .profile.txt")
    ap.add_argument("--out", type=Path, help="write the JSON here")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        # autotuning, when asked for, happens in the warm-up steps, not the timed ones
        torch.backends.cudnn.benchmark = args.cudnn_benchmark
    switch_variants = variants(args.channels_last, args.fused_gate, args.crop_skips)
    if args.profile:
        report, profiled = [], set()
        for task in args.tasks:
            for arch in selected(task, args.archs):
                s = setting_for(task, arch, args.quick)
                batch = 16 if task == "piano_audio" or task not in MUSIC_MEAN_LENGTH else 1
                for switches in (applicable(s, v) for v in switch_variants):
                    if (task, arch, tuple(switches.values())) in profiled:
                        continue
                    profiled.add((task, arch, tuple(switches.values())))
                    report.append(f"## {task} / {label({'arch': arch, **switches})}, batch {batch}\n"
                                  + profile(s, batch, device, args.profile, args.bf16, args.quick, switches=switches))
                    print(report[-1], flush=True)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.with_suffix(".profile.txt").write_text("\n\n".join(report) + "\n")
        return 0
    rows = run(args.tasks, device, args.steps, args.warmup, args.bf16, args.compile, args.quick,
               tuple(args.piano_batches), args.cuda_graphs, args.one_hot_input, switch_variants, args.archs)
    print(table(rows))
    if args.out:
        meta = {**run_metadata(device), "bf16": args.bf16, "compile": args.compile,
                "cuda_graphs": args.cuda_graphs, "one_hot_input": args.one_hot_input, "quick": args.quick,
                "channels_last": args.channels_last, "fused_gate": args.fused_gate, "crop_skips": args.crop_skips,
                "archs": args.archs,
                "steps": args.steps, "warmup": args.warmup, "tf32_conv": torch.backends.cudnn.allow_tf32,
                "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
        write_bench(args.out, {"meta": meta, "rows": rows})
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
