"""Where the piano training step's time goes, and what the candidate speed-ups would give: one process, one GPU.

Each variant is the piano Seq-U-Net (or WaveNet) training step at batch 16 (5,000 targets), replayed from a CUDA
graph with channels-last activations and the fused gate, under bf16 autocast or in float32 (TF32 convolutions),
changed in one respect:

* ``pad=M``: the paper's 180 channels stored padded with zeros to a multiple of M (``sequnet.core.models.padding``:
  the same model; the trainer pads to 64 on a GPU). Without it, cuDNN pads the 180 channels itself on every call.
* ``features=N``: N channels per layer instead of the paper's 180 (a different model, for comparison).
* ``cudnn_benchmark``: cuDNN's autotuner picks each convolution's algorithm.
* ``compile``: ``torch.compile`` of the model (with Inductor's own fused gate instead of the Triton one), with
  static shapes. ``autotune`` (with or without ``compile``): the same in Inductor's max-autotune mode without its
  CUDA graphs (the step is replayed from our own), which also times Triton templates against cuBLAS and cuDNN for
  the products and convolutions; compiling takes much longer. ``coord`` (with ``compile``): the default mode with
  Inductor's coordinate-descent tuning of its own kernels' block sizes and warps (part of max-autotune, without
  the templates), aimed at the elementwise and reduction kernels (8.8 ms of the compiled bf16 Seq-U-Net step on an
  H100, 2026-12-05).
* ``foreach_adam``: Adam's multi-tensor implementation instead of the fused kernel the trainer uses on a GPU.
* ``channels_first``: the activations in the default (channels-first) layout instead of channels-last, which the
  trainer chose uncompiled on an H200 before bf16 and compiling (2026-12-02).
* ``crop``: WaveNet's skip outputs computed only at the samples the output reads
  (``sequnet.core.models.use_cropped_skips``, the trainer's path on a GPU: 11.7 instead of 18.0 TFLOP a step).
* ``lookup``: the first convolution over the ids through the Triton lookup (``sequnet.core.models.id_lookup``)
  instead of ``embedding_bag``: both models have it. ``sort_all`` (with ``lookup``): its backward sorts every
  position by id at once, as until 2026-12-06, instead of within chunks of ``id_lookup.CHUNK`` positions.
  ``partials`` (with ``lookup``): its pieces' sums stored and added class by class, not atomically.
  A backward gathering a position's taps together on a channels-first gradient (the compiled step's) was timed
  and removed on 2026-12-06 (27.43 against 25.76 ms a compiled bf16 Seq-U-Net step on an H100).
* ``compile_loss`` (with ``compile``): the model and the loss compiled as one function
  (``sequnet.analysis.complexity.training_step``), so that the logits' cast, softmax and loss are fused: the
  trainer's ``--compile`` since 2026-12-06 (``sequnet.experiment.steps.step_function``).
* ``inductor.KEY=VALUE`` and ``functorch.KEY=VALUE`` (with ``compile``): that setting of torch's Inductor or
  AOT-autograd config for the variant, such as ``inductor.aggressive_fusion=True`` or
  ``functorch.activation_memory_budget=0.5``.
* ``mm_wgrad``: the convolutions' weight gradients by cuBLAS's batched products instead of cuDNN's kernels
  (``sequnet.core.models.weight_grad``), float32 products in TF32 (``torch.set_float32_matmul_precision("high")``
  for the variant, as cuDNN's convolutions are by default): both models have it. ``triton_wgrad``: the same by
  ``weight_grad``'s Triton kernel (TF32 where cuDNN's convolutions are, without the matmul precision).
  ``cf_wgrad``: cuDNN's weight gradients from channels-first copies of the operands (``weight_grad``'s
  ``"cudnn_cf"``), the data gradients still channels-last.
* ``conv_grads_op``: the channels-last convolutions' backward through the operator of
  ``sequnet.core.models.conv_grads``, to which compiled graphs hand 3-D gradients, instead of PyTorch's own
  (``layers.OPAQUE_CONV_GRADS``). ``recompute_gate`` (with ``compile``): the gates' tanh and sigmoid recomputed in
  the backward pass from the convolutions' outputs (``layers.conv_gate``, ``layers.RECOMPUTE_GATE``) instead of
  stored, as the partitioner chooses. At e0ff3ff (2026-12-07) both were on by default and the words were their
  opposites, ``native_conv_grads`` and ``stored_gate`` (the specs in results/bench/piano-step-conv-grads-gate-*).

    python benchmarks/piano_step.py --out results/bench/piano-step-h200.json
    python benchmarks/piano_step.py --device cpu --quick              # a smoke run on the CPU

It also profiles the first variant's step, switched and compiled as timed (the same model) but not graphed, next to
the JSON (``.profile.txt``: its device time by kind of kernel and kernel by kernel, then torch.profiler's operator
table), and counts the FLOPs of every variant's step (``torch.utils.flop_counter``), so that each time reads as
TFLOP/s.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import sys
import time
from pathlib import Path

import torch
import torch._functorch.config as functorch_config
import torch._inductor.config as inductor_config
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from training import build, loss_fn, make_batch, setting_for  # noqa: E402
from sequnet.core.models import (id_lookup, layers, use_channels_last, use_cropped_skips,  # noqa: E402
                                 use_fused_lookup, use_mm_weight_grad)
from sequnet.core.models.padding import pad_channels  # noqa: E402
from sequnet.analysis.complexity import run_metadata, time_training_step, training_step  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402
from sequnet.experiment.records import git_commit  # noqa: E402

DEFAULT_VARIANTS = [
    "sequnet bf16 foreach_adam", "sequnet bf16", "sequnet bf16 pad=8", "sequnet bf16 pad=64",
    "sequnet bf16 pad=64 compile", "sequnet fp32", "sequnet fp32 pad=64", "wavenet bf16 foreach_adam",
    "wavenet bf16", "wavenet bf16 crop", "wavenet fp32", "wavenet fp32 crop",
]


# ``inductor.KEY=VALUE`` and ``functorch.KEY=VALUE`` words: a compiler setting for the variant, so that a device
# call can try one (fusion, the partitioner's recomputation) without a change here
CONFIGS = {"inductor": inductor_config, "functorch": functorch_config}


def config_patches(spec: str, words: list[str]) -> dict:
    """The variant's compiler settings, {"inductor": {key: value}, ...}, each checked against the setting's module
    and its value a Python literal."""
    patches: dict = {}
    for w in words:
        prefix, dot, rest = w.partition(".")
        if prefix not in CONFIGS or not dot:
            continue
        key, eq, value = rest.partition("=")
        if not eq or not hasattr(CONFIGS[prefix], key):
            raise ValueError(f"{spec!r}: {w!r} is not {prefix}.KEY=VALUE for a setting of torch's {prefix} config")
        try:
            patches.setdefault(prefix, {})[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise ValueError(f"{spec!r}: {w!r}: the value must be a Python literal, such as True or 0.5") from None
    return patches


def parse(spec: str) -> dict:
    words = spec.split()
    v = {"arch": words[0], "bf16": "bf16" in words, "features": None, "pad": 0,
         "cudnn_benchmark": "cudnn_benchmark" in words, "compile": "compile" in words or "autotune" in words,
         "compile_mode": "max-autotune-no-cudagraphs" if "autotune" in words else None,
         "foreach_adam": "foreach_adam" in words, "crop": "crop" in words, "channels_first": "channels_first" in words,
         "lookup": "lookup" in words,
         "mm_wgrad": "mm_wgrad" in words or "triton_wgrad" in words or "cf_wgrad" in words,
         "wgrad_kernel": "triton" if "triton_wgrad" in words else "cudnn_cf" if "cf_wgrad" in words else "products",
         "coord": "coord" in words,
         "lookup_chunk": None if "sort_all" in words else id_lookup.CHUNK,
         "lookup_reduce": "partials" if "partials" in words else id_lookup.REDUCE,
         "compile_loss": "compile_loss" in words, "config_patches": config_patches(spec, words),
         "conv_grads_op": "conv_grads_op" in words, "recompute_gate": "recompute_gate" in words,
         "spec": spec}
    if v["coord"] and not v["compile"]:
        raise ValueError(f"{spec!r}: coord tunes Inductor's kernels, so it needs compile (or autotune)")
    if v["config_patches"] and not v["compile"]:
        raise ValueError(f"{spec!r}: compiler settings change what torch.compile makes, so they need compile")
    if v["coord"]:      # a named word for one of those settings
        v["config_patches"].setdefault("inductor", {})["coordinate_descent_tuning"] = True
    if v["compile_loss"] and not v["compile"]:
        raise ValueError(f"{spec!r}: compile_loss compiles the loss with the model, so it needs compile")
    for w in ("sort_all", "partials"):
        if w in words and not v["lookup"]:
            raise ValueError(f"{spec!r}: {w} changes the Triton lookup's backward, so it needs lookup")
    for w in words:
        if w.startswith("features="):
            v["features"] = int(w.split("=")[1])
        if w.startswith("pad="):
            v["pad"] = int(w.split("=")[1])
    return v


@contextlib.contextmanager
def variant_settings(v: dict):
    """The torch settings variant ``v`` runs under (cuDNN's autotuner; TF32 products for ``mm_wgrad``; Inductor's
    coordinate-descent tuning for ``coord``; the compiler settings of its ``inductor.`` and ``functorch.`` words;
    the lookup backward's chunk and reduction), restored afterwards. They hold from the variant's first
    convolution on, its FLOP count included: cuDNN keeps the plan it first ran for a convolution's shapes, chosen
    by the autotuner or by its heuristics alike (see :func:`check_autotuner`). The matmul precision is set for
    ``mm_wgrad`` only; setting it in every variant, as at 87bf3d0, changed nothing (call 9 of speed_gpu_call.sh,
    H100, 2026-12-06: WaveNet compiled in bf16 124.54 ms a step without it, 124.53 with it)."""
    matmul_precision = torch.get_float32_matmul_precision()
    chunk, reduce = id_lookup.CHUNK, id_lookup.REDUCE
    opaque, recompute = layers.OPAQUE_CONV_GRADS, layers.RECOMPUTE_GATE
    layers.OPAQUE_CONV_GRADS, layers.RECOMPUTE_GATE = v.get("conv_grads_op", False), v.get("recompute_gate", False)
    torch.backends.cudnn.benchmark = v["cudnn_benchmark"]
    id_lookup.CHUNK = v.get("lookup_chunk", chunk)
    id_lookup.REDUCE = v.get("lookup_reduce", reduce)
    products = v["mm_wgrad"] and v["wgrad_kernel"] == "products"
    if products:
        torch.set_float32_matmul_precision("high")
    try:
        # Inductor compiles at the step's first call, inside this block; its cache keys include the setting
        with contextlib.ExitStack() as stack:
            for prefix, patch in v.get("config_patches", {}).items():
                stack.enter_context(CONFIGS[prefix].patch(**patch))
            yield
    finally:
        torch.backends.cudnn.benchmark = False
        id_lookup.CHUNK, id_lookup.REDUCE = chunk, reduce
        layers.OPAQUE_CONV_GRADS, layers.RECOMPUTE_GATE = opaque, recompute
        if products:
            torch.set_float32_matmul_precision(matmul_precision)


def check_autotuner(variants: list[dict], device: torch.device) -> None:
    """Refuse variants with and without ``cudnn_benchmark`` in one GPU process. cuDNN (through PyTorch's cache of
    its plans) runs a convolution with the plan it chose the first time it met the convolution's shapes, strides,
    dtype and deterministic and TF32 flags; whether the autotuner was on is not part of that key. So a variant
    timed after another of the same shapes runs the first one's plans, autotuned or not. Measured (H100,
    2026-12-06, call 9): WaveNet compiled in bf16 with the autotuner took 94.02 ms a step where it was on from the
    start, 124.54 where the FLOP count had run first without it; the 93.51 / 93.47 ms with / without it of
    2026-12-05 ran in one process, the autotuned first, and so were both autotuned."""
    if device.type == "cuda" and len({v["cudnn_benchmark"] for v in variants}) > 1:
        raise ValueError("variants with and without cudnn_benchmark in one process: cuDNN would run the first "
                         "one's convolution plans in both. Run each set in a process of its own (--append "
                         "gathers their rows in one --out file)")


def earlier_rows(out: Path, meta: dict) -> list[dict]:
    """The rows already in ``out`` (for ``--append``), which must come from the same GPU, torch and commit."""
    if not out.exists():
        return []
    earlier = json.loads(out.read_text())
    theirs, ours = earlier["meta"], {**meta, "git_commit": git_commit()}
    for key in ("device", "torch", "git_commit", "batch", "steps", "warmup", "quick"):
        if theirs.get(key) != ours.get(key):
            raise ValueError(f"--append: {out} was measured with {key}={theirs.get(key)!r}, this run has "
                             f"{ours.get(key)!r}; give another --out")
    return earlier["rows"]


def step_flops(model, x, y, setting, bf16: bool) -> int:
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss_fn(setting, logits.float(), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def variant_model(v: dict, device, batch: int, quick: bool):
    """The variant's setting, model (switched as the variant says) and batch."""
    setting = setting_for("piano_audio", v["arch"], quick)
    if v["features"]:
        setting = setting.replace(hidden=v["features"])
    model = build(setting, device, {"channels_last": False, "fused_gate": not v["compile"]})
    if v["pad"]:
        pad_channels(model, v["pad"])
    if v["crop"]:
        use_cropped_skips(model)                # raises for the Seq-U-Net, which has no such switch
    if v["lookup"]:
        use_fused_lookup(model)
    if not v["channels_first"]:
        use_channels_last(model)
    if v["mm_wgrad"]:
        use_mm_weight_grad(model, kernel=v["wgrad_kernel"])
    return setting, model, *make_batch(setting, batch, device, quick)


def measure(v: dict, device, batch: int, steps: int, warmup: int, quick: bool,
            profile_steps: int = 0) -> tuple[dict, str | None]:
    """Variant ``v``'s row; and with ``profile_steps``, its profile (:func:`profile_model`) after the timing, of the
    same model, whose compiled code the profile then reuses."""
    cuda = device.type == "cuda"
    with variant_settings(v):       # from the first convolution on: the FLOP count's plans are the ones timed
        setting, model, x, y = variant_model(v, device, batch, quick)
        if v["wgrad_kernel"] == "triton":   # counted as the products (the same sums): the counter sees no Triton
            use_mm_weight_grad(model, kernel="products")
        flops = step_flops(model, x, y, setting, v["bf16"])      # padded: the FLOPs the GPU runs, zeros included
        if v["wgrad_kernel"] == "triton":
            use_mm_weight_grad(model, kernel="triton")
        t0 = time.perf_counter()
        timing = time_training_step(model, x, y, lambda logits, target: loss_fn(setting, logits, target), steps,
                                    warmup, v["bf16"], v["compile_mode"] or v["compile"], cuda,
                                    fused_adam=False if v["foreach_adam"] else None,
                                    compile_loss=v["compile_loss"])
    t = timing["time_median_s"]
    row = {**v, "batch": batch, "features": setting.hidden, "flops": flops, "tflops_per_s": flops / t / 1e12,
           "setup_and_timing_s": time.perf_counter() - t0, **timing}
    print(f"{v['spec']:36s} {t * 1e3:8.2f} ms/step  {flops / 1e12:6.2f} TFLOP  {row['tflops_per_s']:6.1f} TFLOP/s  "
          f"peak {timing['peak_memory_mib'] or float('nan'):8.0f} MiB", flush=True)
    report = profile_model(v, setting, model, x, y, profile_steps) if profile_steps else None
    del model
    if cuda:
        torch.cuda.empty_cache()
    return row, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS,
                    help='e.g. "sequnet bf16 features=192" (arch, then any of bf16, features=N, pad=M, '
                         'cudnn_benchmark, compile, autotune, coord, foreach_adam, crop, lookup, sort_all, partials, '
                         'compile_loss, inductor.KEY=VALUE, functorch.KEY=VALUE, mm_wgrad, triton_wgrad, cf_wgrad)')
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--profile-steps", type=int, default=3, help="profile the first variant (0: no profile)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes for a CPU smoke run")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--append", action="store_true",
                    help="add the rows to --out's, measured by another process on the same GPU at this commit")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if args.append and not args.out:
        ap.error("--append needs --out")
    try:
        check_autotuner([parse(s) for s in args.variants], device)     # parse refuses a malformed variant
    except ValueError as e:
        ap.error(str(e))
    meta = {**run_metadata(device), "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
            "quick": args.quick, "cuda_graphs": device.type == "cuda", "channels_last": True,
            "tf32_conv": torch.backends.cudnn.allow_tf32}
    try:
        rows = earlier_rows(args.out, meta) if args.append else []
    except ValueError as e:
        ap.error(str(e))
    appending = bool(rows)
    if appending:
        meta["processes"] = json.loads(args.out.read_text())["meta"].get("processes", 1) + 1
    for i, spec in enumerate(args.variants):
        # the first variant of a file: an appending process leaves the profile of the file's first alone
        profile_steps = args.profile_steps if i == 0 and args.out and not appending else 0
        try:
            row, report = measure(parse(spec), device, args.batch, args.steps, args.warmup, args.quick,
                                  profile_steps)
            rows.append(row)
            if report is not None:
                header = f"## {spec}, batch {args.batch}, not graphed"
                args.out.with_suffix(".profile.txt").write_text(f"{header}\n{report}\n")
        except Exception as e:          # one variant failing (e.g. compile) must not lose the others
            print(f"{spec}: FAILED {type(e).__name__}: {e}", flush=True)
            rows.append({**parse(spec), "error": f"{type(e).__name__}: {e}"})
        if args.out:                    # after every variant, so that a time limit keeps what was measured
            write_bench(args.out, {"meta": meta, "rows": rows})
    return 0


# what a kernel of the step does, from its name (lower case; the first kind whose fragment it holds). Inductor's
# come before cuDNN's: their names list the operations they fused, "convolution" among them (H100, 2026-12-05: 4.8
# ms a step of them was counted as cuDNN's "convolution, other").
KERNEL_KINDS = (
    ("input lookup (Triton)", ("_lookup_kernel", "_sorted_grad_kernel")),
    ("fused gate (Triton)", ("_gate_", "_identity_backward")),
    # before cuDNN's, whose kernels' names hold "wgrad" too
    ("convolution weight gradient (Triton)", ("_wgrad_kernel",)),
    ("Inductor's fused kernels", ("triton_",)),
    ("convolution forward (cuDNN)", ("fprop",)),
    ("convolution data gradient (cuDNN)", ("dgrad",)),
    ("convolution weight gradient (cuDNN)", ("wgrad",)),
    # before cuDNN's other kernels: cuBLAS's names hold "xmma" too ("sm90_xmma_gemm_..."), or are "nvjet_..."
    ("matrix products (cuBLAS)", ("gemm", "nvjet", "cutlass")),
    ("convolution, other (cuDNN)", ("conv", "cudnn", "xmma")),
    ("softmax and loss", ("softmax", "nll_loss")),
    ("Adam", ("adam", "multi_tensor")),
    ("sort and search", ("radix", "sort", "search")),
    ("ATen copies, fills and elementwise", ("copy", "fill", "memcpy", "memset", "elementwise", "reduce")),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, parts in KERNEL_KINDS if any(p in low for p in parts)), "other")


def kernel_summary(kernels: list[tuple[str, float]], steps: int, top: int = 25) -> str:
    """Where a step's device time goes: ``kernels`` (name, µs) of ``steps`` profiled steps summed by kind
    (``KERNEL_KINDS``), then the ``top`` kernels by time, both per step, as Markdown tables."""
    if not kernels:
        return "No GPU kernels were profiled (a CPU run)."
    total = sum(us for _, us in kernels)
    by_kind, by_name = {}, {}
    for name, us in kernels:
        for table, key in ((by_kind, kernel_kind(name)), (by_name, name)):
            n, t = table.get(key, (0, 0.0))
            table[key] = (n + 1, t + us)
    lines = [f"### device time by kind of kernel, per step ({steps} steps profiled)", "",
             "| kind | ms/step | kernels/step | share |", "|---|---:|---:|---:|"]
    for kind, (n, us) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
        lines.append(f"| {kind} | {us / steps / 1e3:.2f} | {n / steps:g} | {us / total:.1%} |")
    lines += [f"| all | {total / steps / 1e3:.2f} | {len(kernels) / steps:g} | 100.0% |", "",
              f"### the {top} longest kernels, per step", "", "| kernel | kind | ms/step | launches/step |",
              "|---|---|---:|---:|"]
    for name, (n, us) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]:
        short = name if len(name) <= 90 else name[:87] + "..."
        lines.append(f"| `{short}` | {kernel_kind(name)} | {us / steps / 1e3:.3f} | {n / steps:g} |")
    return "\n".join(lines)


def profile_model(v: dict, setting, model, x, y, steps: int, rows: int = 40) -> str:
    """The device time of ``steps`` steps of variant ``v``'s ``model`` (switched, padded and compiled as
    :func:`measure` times it): summed by kind of kernel and kernel by kernel (:func:`kernel_summary`), then
    torch.profiler's operator table sorted by device time. The steps run without the CUDA graph, whose replay the
    profiler would see as one launch; a compiled variant shows Inductor's kernels by name."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = x.device.type == "cuda"
    with variant_settings(v):
        step = training_step(model, x, y, lambda logits, target: loss_fn(setting, logits, target), v["bf16"],
                             v["compile_mode"] or v["compile"], fused_adam=False if v["foreach_adam"] else None,
                             compile_loss=v["compile_loss"])
        for _ in range(2):              # compiling, cuDNN's choices and Adam's state stay out of the table
            step()
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else []),
                     record_shapes=True) as prof:
            for _ in range(steps):
                step()
            if cuda:
                torch.cuda.synchronize(x.device)
    # the compiled graphs' ranges ("## Call CompiledFxGraph ... ##") appear on the GPU's timeline too, as user
    # annotations spanning their kernels: counted, they doubled the step (H100, 2026-12-06, with record_shapes)
    kernels = [(e.name, e.self_device_time_total) for e in prof.events()
               if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
    table = prof.key_averages().table(sort_by="cuda_time_total" if cuda else "self_cpu_time_total", row_limit=rows)
    return f"{kernel_summary(kernels, steps)}\n\n### operators\n{table}\n\n{copies_table(prof, steps)}"


COPY_OPS = ("aten::copy_", "aten::_to_copy", "aten::clone")
PASS_THROUGH = ("aten::to", "aten::contiguous")     # they only forward to a copy: its caller is theirs


def copies_table(prof, steps: int) -> str:
    """The copies of a profiled step (``COPY_OPS``) by input shapes and by the operator that called them: the H100's
    compiled TF32 step spent 1.27 ms in 21 device-to-device copies outside Inductor's kernels (2026-12-05), and the
    compiled bf16 Seq-U-Net's, its loss compiled too, 0.14 ms in one of the logits' shape (2026-12-06), called by
    no operator the table above names. A copy inside another (``aten::_to_copy`` runs ``aten::copy_``) counts
    with the outer one. (On the CPU, the compiled quick model's copies are of its convolutions' weights.)"""
    groups: dict[tuple[str, str, str], tuple[int, float]] = {}
    for e in prof.events():
        parent = e.cpu_parent
        if e.name not in COPY_OPS or (parent is not None and parent.name in COPY_OPS):
            continue
        while parent is not None and parent.name in PASS_THROUGH:      # the operator that asked for the copy
            parent = parent.cpu_parent
        caller = parent.name if parent is not None else "(Python)"
        key = (e.name, str(e.input_shapes)[:100], caller if len(caller) <= 60 else caller[:57] + "...")
        n, us = groups.get(key, (0, 0.0))
        groups[key] = (n + 1, us + e.device_time_total)
    lines = [f"### copies ({', '.join(COPY_OPS)}) by input shapes and caller, per step", "",
             "| operator | input shapes | called by | calls/step | device ms/step |", "|---|---|---|---:|---:|"]
    for (op, shapes, caller), (n, us) in sorted(groups.items(), key=lambda kv: (-kv[1][1], -kv[1][0]))[:20]:
        lines.append(f"| {op} | {shapes} | {caller} | {n / steps:g} | {us / steps / 1e3:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
