"""The reproduction page's training-step table: the committed ``benchmarks/training.py`` runs, each Seq-U-Net row
beside the baseline measured with it in one process, with the same speed-ups."""
from __future__ import annotations

import json
from pathlib import Path

from sequnet.analysis.benchmarks import cropped, piano_key
from sequnet.core.configs import baseline_arch
from sequnet.publish.names import task_name, text
from sequnet.publish.paths import RESULTS


def ratio(a, b) -> str:
    return f"{a / b:.2f}" if a and b else "–"


def pair_key(meta: dict, row: dict) -> tuple:
    """What a Seq-U-Net row and its baseline share. A file may hold several pairs of one task and batch: the piano
    models plain and with channels-last and the fused gate, or one Seq-U-Net beside WaveNet with and without its
    skips cropped (``--crop-skips both``). Keyed by task and batch alone, the last of them replaced the others, and
    the row kept no word of its speed-ups (2026-12-03)."""
    return (row["task"],) + piano_key(meta, row)


def speed_ups(row: dict) -> str:
    """The switches of one pair that the file's meta does not name."""
    parts = ["channels-last"] if row.get("channels_last") else []
    parts += ["fused gate"] if row.get("fused_gate") else []
    parts += ["WaveNet's skips cropped"] if cropped(row) else []
    return "".join(f", {p}" for p in parts)


def bench_section(bench_dir: Path = RESULTS / "bench") -> list[str]:
    """Training-step ratios from the committed ``benchmarks/training.py`` runs: both models of every Table 1 pair
    timed in one process on one GPU, with synthetic inputs of the paper's shapes (no training)."""
    files = sorted(bench_dir.glob("training*.json"))
    if not files:
        return []
    lines = ["### Training-step benchmark (all Table 1 pairs)", "",
             "`benchmarks/training.py` times a full training step (forward, loss, backward, Adam) of both models "
             "of each pair in one process, synchronised, median after warm-up, with inputs of the paper's training "
             "shapes; memory is the allocator's peak. These are measurements of cost, not of accuracy.", "",
             "| Task | Batch | Source | Seq-U-Net ms/step | baseline ms/step | Time ratio | Memory ratio |",
             "|---|---|---|---|---|---|---|"]
    for path in files:
        try:
            bench = json.loads(path.read_bytes().decode("utf-8"))
            meta, rows = bench["meta"], bench["rows"]
            baselines = {pair_key(meta, r): r for r in rows if r["arch"] == baseline_arch(r["task"])}
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"sequnet book: {path}: not a benchmarks/training.py result ({type(e).__name__}: {e}); "
                             f"fix or remove it") from e
        label = (f"ours: {text(meta.get('device', '?'))}, {text(str(meta.get('date', ''))[:10])}"
                 f"{', bf16' if meta.get('bf16') else ''}{', compiled' if meta.get('compile') else ''}"
                 f"{', CUDA graphs' if meta.get('cuda_graphs') else ''}")
        for r in rows:
            base = baselines.get(pair_key(meta, r))
            if r["arch"] != "sequnet" or base is None:
                continue
            lines.append(f"| {task_name(r['task'])} | {text(r['batch'])} | {label}{speed_ups(r)} | "
                         f"{r['time_median_s'] * 1e3:.1f} | {base['time_median_s'] * 1e3:.1f} | "
                         f"{ratio(r['time_median_s'], base['time_median_s'])} | "
                         f"{ratio(r['peak_memory_mib'], base['peak_memory_mib'])} |")
    return lines
