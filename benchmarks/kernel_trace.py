"""Where a run's GPU time goes, kernel by kernel, from torch.profiler's trace: each kernel's duration, grouped by
name and grid, and how much of the run's span the GPU was busy.

A generation step is a chain of about a dozen short kernels launched from CUDA graphs, so its time is their
durations plus the gaps between them, less what programmatic dependent launch overlaps. The profiler records a
graph's kernels one by one (CUPTI traces them inside a replay), but not their grids in its Python events; the
Chrome trace it exports has both, so the kernels are read back from that. Kernels of one name with different
grids are usually one kernel specialised for layers of different shapes, so they are told apart by the grid.

``busy`` is the union of the kernels' intervals, so kernels that overlap (PDL) count once; ``span`` runs from the
first kernel's start to the last one's end. span - busy is the time no kernel ran; kernel time - busy is the overlap.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable

import torch

GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")


def trace_kernels(run: Callable[[], None], device: torch.device) -> list[dict]:
    """The GPU operations ``run()`` launches: name, grid, start and duration (µs), in order of start."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize(device)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        prof.export_chrome_trace(str(path))
        events = json.loads(path.read_text())["traceEvents"]
    ops = [{"name": e["name"], "grid": list(e.get("args", {}).get("grid", [])), "ts": float(e["ts"]),
            "dur": float(e["dur"])} for e in events if e.get("cat") in GPU_CATEGORIES and "dur" in e]
    return sorted(ops, key=lambda op: op["ts"])


def busy_us(ops: list[dict]) -> float:
    """The length of the union of the operations' intervals."""
    total, end = 0.0, float("-inf")
    for op in sorted(ops, key=lambda o: o["ts"]):
        start, stop = op["ts"], op["ts"] + op["dur"]
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total


def summarise(ops: list[dict], steps: int, top: int = 16) -> dict:
    """Per step: operations, their summed durations, the busy time and the span (module docstring); and the
    ``top`` groups of one name and grid by time, each with its launches and µs a step and its mean duration."""
    if steps <= 0:
        raise ValueError(f"steps={steps}: the profiled run must have at least one step")
    if not ops:
        return {"steps": steps, "ops_per_step": 0.0, "kernel_us_per_step": 0.0, "busy_us_per_step": 0.0,
                "span_us_per_step": 0.0, "by_kernel": []}
    groups: dict[tuple[str, tuple], list[float]] = {}
    for op in ops:
        groups.setdefault((op["name"], tuple(op["grid"])), []).append(op["dur"])
    span = max(op["ts"] + op["dur"] for op in ops) - min(op["ts"] for op in ops)
    ranked = sorted(groups.items(), key=lambda kv: -sum(kv[1]))[:top]
    return {"steps": steps, "ops_per_step": len(ops) / steps,
            "kernel_us_per_step": sum(op["dur"] for op in ops) / steps,
            "busy_us_per_step": busy_us(ops) / steps, "span_us_per_step": span / steps,
            "by_kernel": [{"name": name, "grid": list(grid), "per_step": len(d) / steps, "mean_us": sum(d) / len(d),
                           "us_per_step": sum(d) / steps} for (name, grid), d in ranked]}


def summary_lines(summary: dict) -> list[str]:
    """The summary as a few lines of text for a log."""
    s = summary
    lines = [f"  profiled {s['steps']} steps: {s['ops_per_step']:.2f} GPU ops/step, "
             f"kernels {s['kernel_us_per_step']:.2f} us/step, busy {s['busy_us_per_step']:.2f}, "
             f"span {s['span_us_per_step']:.2f} "
             f"(idle {s['span_us_per_step'] - s['busy_us_per_step']:.2f}, "
             f"overlap {s['kernel_us_per_step'] - s['busy_us_per_step']:.2f})"]
    for k in s["by_kernel"]:
        name = k["name"] if len(k["name"]) <= 48 else k["name"][:45] + "..."
        lines.append(f"    {name:48s} grid {str(k['grid']):16s} {k['per_step']:6.3f}/step "
                     f"{k['mean_us']:7.2f} us each {k['us_per_step']:7.2f} us/step")
    return lines
