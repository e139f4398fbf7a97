"""Data-parallel scaling: training throughput on 1 and 2 GPUs with DDP (NCCL), or on the CPU with gloo.

    PYTHONPATH=. python benchmarks/ddp_scaling.py --out results/bench/ddp_scaling.json       # GPUs, nproc 1 and 2
    python benchmarks/ddp_scaling.py --device cpu --quick --out /tmp/ddp_scaling.json         # CPU, tiny models

Workloads (the paper's models, Tables 2 and 3):

* ``piano_audio/sequnet``: the residual Seq-U-Net of the raw-audio experiment at 16 windows per GPU;
* ``char_ptb/tcn``: the TCN of char-level PTB at 16 streams per GPU.

For every process count the script launches itself through torchrun's module (``torch.distributed.run``), with
NVLink multicast off (``NCCL_NVLS_ENABLE=0``) in the processes' environment. Each process trains its own
synthetic batch of the paper's training shapes (timing does not depend on the values) with DDP and Adam: warm-up
steps first (cuDNN autotuning, allocator, NCCL set-up), then timed steps, each between ``torch.cuda.synchronize``
calls. Throughput counts the scored targets of all processes per second of the slowest process; scaling efficiency
is throughput(N) / (N x throughput(1)): 1.0 means the gradient all-reduce costs nothing. One process is the plain
trainer's case (no DDP wrapper, as ``sequnet train --nproc 1``), so the efficiency includes all of DDP's cost.
cuDNN autotuning is off unless ``--cudnn-benchmark`` (as in benchmarks/training.py). ``--quick`` shrinks the
models (keeping their architecture) so that the CPU path runs in seconds; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import sequnet  # noqa: E402
from sequnet.core.losses import cross_entropy  # noqa: E402
from sequnet.experiment import distributed  # noqa: E402
from sequnet.analysis.complexity import run_metadata  # noqa: E402
from sequnet.experiment.scales import resolve_device  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402

WORKLOADS = {"piano_audio/sequnet": 16, "char_ptb/tcn": 16}   # name -> batch per process


def setting_of(workload: str, quick: bool):
    task, arch = workload.split("/")
    s = sequnet.paper_setting(task, arch)
    if quick:   # as benchmarks/training.py: something a CPU does in seconds, same architecture
        s = s.replace(hidden=16, levels=min(s.levels, 4), emsize=min(s.emsize, 16) or 0,
                      target_output=min(s.target_output or 0, 64) or None)
    return s


def measure(workload: str, batch: int, ctx: distributed.Context, steps: int, warmup: int, quick: bool,
            bf16: bool) -> dict:
    """This process's part of one measurement; the returned numbers are already reduced over the processes."""
    s = setting_of(workload, quick)
    torch.manual_seed(0)
    model = sequnet.build_model(s).to(ctx.device).train()
    net = distributed.wrap(model, ctx)
    optimizer = torch.optim.Adam(model.parameters(), lr=s.lr)
    inputs, scored = s.input_output
    gen = torch.Generator().manual_seed(1 + ctx.rank)                  # every process its own batch
    classes = s.vocab or s.classes
    x = torch.randint(0, classes, (batch, inputs), generator=gen).to(ctx.device)
    y = torch.randint(0, classes, (batch, scored), generator=gen).to(ctx.device)
    cuda = ctx.device.type == "cuda"

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = net(x)
        cross_entropy(logits, y).backward()       # the trainer's loss (benchmarks/training.py's loss_fn says why)
        optimizer.step()

    def sync():
        if cuda:
            torch.cuda.synchronize(ctx.device)

    for _ in range(warmup):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
    if ctx.world > 1:
        dist.barrier()                                                 # start the timed steps together
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    elapsed = sum(times)
    if ctx.world > 1:                                                  # the slowest process sets the pace
        buf = torch.tensor([elapsed], dtype=torch.float64, device=ctx.device)
        dist.all_reduce(buf, op=dist.ReduceOp.MAX)
        elapsed = buf.item()
    targets = ctx.world * batch * scored * steps
    row = {"workload": workload, "nproc": ctx.world, "backend": ctx.backend, "batch_per_process": batch, "effective_batch": ctx.world * batch,
           "params": sequnet.count_parameters(model), "window": [inputs, scored], "steps": steps, "warmup": warmup,
           "time_per_step_median_s": statistics.median(times), "elapsed_s": elapsed,
           "targets_per_s": targets / elapsed,
           "peak_memory_mib": torch.cuda.max_memory_allocated(ctx.device) / 2 ** 20 if cuda else None}
    del net, model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return row


def nccl_version(ctx: distributed.Context) -> str | None:
    if ctx.device.type != "cuda":
        return None
    version = torch.cuda.nccl.version()
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def worker(args) -> None:
    """One torchrun process: every workload, rank 0 writes the rows."""
    ctx = distributed.setup(args.device)
    if ctx.device.type == "cpu":
        torch.set_num_threads(args.cpu_threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    rows = [measure(w, WORKLOADS[w], ctx, args.steps, args.warmup, args.quick, args.bf16) for w in args.workloads]
    if ctx.is_main:
        meta = run_metadata(ctx.device) | {"bf16": args.bf16, "quick": args.quick, "nccl": nccl_version(ctx),
                                          "cudnn_benchmark": args.cudnn_benchmark}
        Path(args.result).write_text(json.dumps({"meta": meta, "rows": rows}))


def launch(nproc: int, args, result: Path) -> None:
    target = [str(Path(__file__).resolve()), "--worker", "--result", str(result), "--device", args.device,
              "--steps", str(args.steps), "--warmup", str(args.warmup), "--cpu-threads", str(args.cpu_threads),
              "--workloads", *args.workloads] + ["--quick"] * args.quick + ["--bf16"] * args.bf16 \
        + ["--cudnn-benchmark"] * args.cudnn_benchmark
    env = distributed.launch_env(nproc)
    env["NCCL_NVLS_ENABLE"] = "0"            # NVLink multicast stays off, whatever the caller's environment says
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                      env.get("PYTHONPATH")]))
    subprocess.run(distributed.torchrun_command(nproc, target), env=env, check=True, stdin=subprocess.DEVNULL)


def with_efficiency(rows: list[dict]) -> list[dict]:
    base = {r["workload"]: r["targets_per_s"] for r in rows if r["nproc"] == 1}
    for r in rows:
        one = base.get(r["workload"])
        r["speedup"] = r["targets_per_s"] / one if one else None
        r["scaling_efficiency"] = r["speedup"] / r["nproc"] if one else None
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| workload | processes | batch/process | ms/step | targets/s | speedup | efficiency | peak MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        def fmt(v, f):
            return "–" if v is None else format(v, f)
        lines.append(f"| {r['workload']} | {r['nproc']} | {r['batch_per_process']} "
                     f"| {1000 * r['time_per_step_median_s']:.1f} | {r['targets_per_s']:,.0f} "
                     f"| {fmt(r['speedup'], '.2f')} | {fmt(r['scaling_efficiency'], '.2f')} "
                     f"| {fmt(r['peak_memory_mib'], '.0f')} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts to measure (default 1 2)")
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--steps", type=int, help="timed steps (default 30; --quick 5)")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 10; --quick 2)")
    p.add_argument("--quick", action="store_true", help="tiny models: a smoke run (CPU)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (default float32, as the paper)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="cuDNN autotuning (fixed shapes)")
    p.add_argument("--cpu-threads", type=int, default=1, metavar="N", help="torch threads per CPU process")
    p.add_argument("--out", type=Path, help="JSON file for the measurements")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.steps = args.steps or (5 if args.quick else 30)
    args.warmup = args.warmup if args.warmup is not None else (2 if args.quick else 10)
    if args.worker:
        worker(args)
        return 0
    device = resolve_device(args.device)
    if device.type == "cuda" and max(args.nproc) > torch.cuda.device_count():
        p.error(f"--nproc {max(args.nproc)}: only {torch.cuda.device_count()} GPU(s) visible")
    rows, meta = [], None
    with tempfile.TemporaryDirectory(prefix="ddp-scaling-") as tmp:
        for nproc in args.nproc:
            result = Path(tmp) / f"{nproc}.json"
            launch(nproc, args, result)
            data = json.loads(result.read_text())
            meta = meta or data["meta"]
            rows += data["rows"]
    rows = with_efficiency(rows)
    backends = "/".join(sorted({r["backend"] for r in rows if r["backend"]})) or "one process"
    print(f"DDP scaling on {meta['device']} ({backends}, torch {meta['torch']}"
          + (", quick: tiny models" if args.quick else "") + ")\n" + table(rows))
    if args.out:
        write_bench(args.out, {"meta": meta, "rows": rows})
        print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
