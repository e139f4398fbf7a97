"""A training step's time as a fixed cost plus its arithmetic: ``time = fixed + FLOPs / rate``, fitted per task and
model to the batch sweep of ``benchmarks/breakdown.py`` (the paper's batch, four and sixteen times it).

The fixed cost is what a step pays whatever its size: its few hundred GPU operations' launches and their small
work (divided by the step's operations, the cost of one); the rate is the TFLOP/s its arithmetic reaches once the
operations are large. The two say why a model with less than half the FLOPs of its baseline takes most of its
time on an H200: similar fixed costs, and a lower rate. The sweep's longer window is left out of the fit and
compared with what the fit predicts for it, as a check of the model: where the two differ, the step spends its
time on something its FLOPs do not count (the breakdown does not measure what).
"""
from __future__ import annotations

import numpy as np


def _time(row: dict) -> float:
    return row.get("graph_time_s") or row["eager_time_s"]


def fit_steps(result: dict) -> list[dict]:
    """Per task and model of a breakdown file with at least two batches at the paper's window: the fitted fixed
    cost (ms, and per GPU operation in µs), the rate (TFLOP/s), the largest relative residual over the fitted
    points, the arithmetic's share of the step at the smallest batch (the paper's), and the longer window's
    measured time over the fit's prediction (None without one)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in result["rows"]:
        groups.setdefault((r["task"], r["arch"]), []).append(r)
    fits = []
    for (task, arch), rows in groups.items():
        batch_sweep = sorted((r for r in rows if r.get("window_multiple") in (None, 1)), key=lambda r: r["batch"])
        if len({r["batch"] for r in batch_sweep}) < 2:
            continue
        flops = np.array([r["flops_per_step"] for r in batch_sweep], dtype=float)
        times = np.array([_time(r) for r in batch_sweep])
        (fixed, per_flop), *_ = np.linalg.lstsq(np.stack([np.ones_like(flops), flops], 1), times, rcond=None)
        predicted = fixed + per_flop * flops
        ops = np.mean([r["gpu_operations_per_step"] for r in batch_sweep])
        window = [r for r in rows if r.get("window_multiple") not in (None, 1)]
        fits.append({
            "task": task, "arch": arch, "points": len(batch_sweep), "fixed_ms": fixed * 1e3,
            "per_operation_us": fixed / ops * 1e6, "rate_tflops": 1 / per_flop / 1e12 if per_flop > 0 else None,
            "worst_residual": float(np.max(np.abs(times - predicted) / times)),
            "arithmetic_share": float(per_flop * flops[0] / times[0]),
            "window_over_fit": (_time(window[0]) / (fixed + per_flop * window[0]["flops_per_step"])
                                if window else None)})
    return fits


def fit_markdown(result: dict) -> str:
    """:func:`fit_steps` as a table, Seq-U-Net beside its baseline."""
    fits = fit_steps(result)
    if not fits:
        return "The breakdown file has no batch sweep to fit a fixed cost and a rate to."
    lines = ["| task | model | fixed cost ms (per GPU operation µs) | arithmetic TFLOP/s | largest residual | "
             "arithmetic share of the paper's step | longer window: measured / fit |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for f in fits:
        rate = "–" if f["rate_tflops"] is None else f"{f['rate_tflops']:.1f}"
        window = "–" if f["window_over_fit"] is None else f"{f['window_over_fit']:.2f}"
        lines.append(f"| {f['task']} | {f['arch']} | {f['fixed_ms']:.2f} ({f['per_operation_us']:.1f}) | {rate} | "
                     f"{100 * f['worst_residual']:.1f} % | {100 * f['arithmetic_share']:.0f} % | {window} |")
    return "\n".join(lines)
