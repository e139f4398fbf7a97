"""The committed GPU benchmarks (``results/bench/*.json``, ``{"meta": ..., "rows": [...]}``) read into tables.

``benchmarks/training.py`` writes one row per (task, arch, batch) training step, ``benchmarks/complexity.py`` the
sweeps of :mod:`sequnet.analysis.sweeps`, ``benchmarks/generation.py`` samples per second of cached generation.
The notebooks show them whatever their own scale: they are the paper-size measurements a CPU cannot make.
"""
from __future__ import annotations

import json
from pathlib import Path

from sequnet.core.configs import baseline_arch
from sequnet.core.generation import kernels
from sequnet.core.generation.state import InferenceState
from sequnet.experiment.records import PAPER_TABLE1, git_commit
from sequnet.analysis import step_model
from sequnet.analysis.figures import MAX_WIDTH_IN, STYLE

TABLE1_TASKS = ("char_ptb", "word_ptb", "muse", "nottingham", "jsb", "piano_audio")


def load_bench(bench_dir: Path, pattern: str, full_only: bool = False) -> list[tuple[Path, dict]]:
    """Committed benchmark JSON files matching ``pattern``, newest first; ``full_only`` leaves out quick (CPU,
    smoke-plan) runs."""
    found = [(p, json.loads(p.read_text())) for p in sorted(Path(bench_dir).glob(pattern))]
    found = [(p, r) for p, r in found if not (full_only and r.get("meta", {}).get("quick"))]
    return sorted(found, key=lambda item: item[1].get("meta", {}).get("date", ""), reverse=True)


def write_bench(path: Path, payload: dict) -> None:
    """Write a benchmark result (``{"meta": ..., "rows": ...}``) as indented JSON, whole or not at all: through a
    temporary file beside it, so a run stopped by a time limit never leaves half a file for the book to read."""
    path = Path(path)
    payload = {**payload, "meta": {"git_commit": git_commit(), **payload.get("meta", {})}}   # what was measured
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    tmp.replace(path)


def at_commit(meta: dict) -> str:
    """", at 1a2b3c4" for a file that names the commit it measured (files from before 2026-12-05 do not)."""
    return f", at {meta['git_commit']}" if meta.get("git_commit") else ""


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def fmt_count(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def baseline_pairs(result: dict) -> dict[tuple[str, int], tuple[dict, dict]]:
    """(task, batch) -> (Seq-U-Net row, baseline row) of one training benchmark, for every pair it measured."""
    rows = {(r["task"], r["arch"], r["batch"]): r for r in result["rows"]}
    return {(task, batch): (r, rows[task, baseline_arch(task), batch])
            for (task, arch, batch), r in rows.items()
            if arch == "sequnet" and (task, baseline_arch(task), batch) in rows}


def paper_ratios(task: str) -> tuple[float, float]:
    """Table 1's (time, memory) ratio of the Seq-U-Net to its baseline."""
    p, q = PAPER_TABLE1[task, "sequnet"], PAPER_TABLE1[task, baseline_arch(task)]
    return p["time_s"] / q["time_s"], p["mem_mb"] / q["mem_mb"]


def table1_ratios_markdown(bench_dir: Path) -> str:
    """Table 1's time and memory ratios beside ours, from the newest full training benchmark that covers every
    pair (piano-only runs of other variants are in :func:`piano_variants_markdown`)."""
    bench = load_bench(bench_dir, "training*.json", full_only=True)
    complete = [(p, r) for p, r in bench if {row["task"] for row in r["rows"]} >= {"char_ptb", "piano_audio"}]
    pairs = {}
    if complete:
        path, result = complete[0]
        pairs = baseline_pairs(result)
        label = (f"Ours: `{path.name}`, measured on **{result['meta']['device']}** on {result['meta']['date'][:10]} "
                 f"(torch {result['meta']['torch']}).")
    else:
        label = (f"**Ours: no GPU benchmark committed** (no full `training*.json` in `results/bench`); the table shows "
                 "the paper's ratios only. Run `python benchmarks/training.py --device cuda --out "
                 "results/bench/training.json` on a GPU and commit the file.")
    table = ["| Task | batch | paper: time ratio | ours | paper: memory ratio | ours |",
             "|---|---:|---:|---:|---:|---:|"]
    for task in TABLE1_TASKS:
        paper_time, paper_mem = paper_ratios(task)
        for b in sorted(b for t, b in pairs if t == task) or ["–"]:
            s, w = pairs.get((task, b), ({}, {}))
            note = " (paper: 2)" if task == "piano_audio" and b not in (2, "–") else ""
            table.append(f"| {task} | {b}{note} | {paper_time:.2f} | "
                         f"{fmt(ratio(s.get('time_median_s'), w.get('time_median_s')))} | {paper_mem:.2f} | "
                         f"{fmt(ratio(s.get('peak_memory_mib'), w.get('peak_memory_mib')))} |")
    return label + "\n\n" + "\n".join(table)


# the compiler configs whose settings benchmarks/piano_step.py's words change, as a table names them
COMPILERS = {"inductor": "Inductor", "functorch": "AOT autograd"}


def variant(meta: dict, row: dict) -> str:
    """How a piano row was run: precision, execution and layout; a piano step's compiler settings by config and key
    (``inductor.triton.enable_pdl=True`` as "Inductor: triton.enable_pdl"), short enough for a table's column."""
    if meta.get("piano_step"):        # benchmarks/piano_step.py names its variant; every one is graphed
        words = " ".join(w for w in row["spec"].split()[1:] if w.partition(".")[0] not in COMPILERS)
        settings = [f"{COMPILERS[c]}: {k}" + ("" if v is True else f"={v}")
                    for c, patch in (row.get("config_patches") or {}).items() for k, v in patch.items()]
        layout = "channels-first" if row.get("channels_first") else "channels-last"
        return ", ".join([words, *settings, "CUDA graphs", layout])
    parts = ["bf16" if meta.get("bf16") else "fp32", "CUDA graphs" if meta.get("cuda_graphs") else "eager"]
    parts += ["compiled"] if meta.get("compile") else []
    parts += ["channels-last"] if row.get("channels_last") else []
    parts += ["fused gate"] if row.get("fused_gate") else []
    return ", ".join(parts + (["WaveNet's skips cropped"] if cropped(row) else []))


def cropped(row: dict) -> bool:
    """Whether a piano row's WaveNet computed its skips only at the output's samples: the WaveNet row's own
    switch, or the Seq-U-Net row's record of the WaveNet it was measured beside."""
    return bool(row.get("crop_skips") or row.get("baseline_crop_skips"))


def piano_key(meta: dict, row: dict) -> tuple:
    """What a Seq-U-Net row and its WaveNet must share: precision, execution, layout, the fused gate and whether
    the WaveNet's skips were cropped, so that a ratio compares the two models with the same speed-ups (files from
    before WaveNet had the fused gate have no fused WaveNet row: their fused Seq-U-Net rows get no ratio)."""
    return (meta["device"], bool(meta.get("bf16")), bool(meta.get("cuda_graphs")), bool(meta.get("compile")),
            bool(meta.get("one_hot_input")), row["batch"], bool(row.get("channels_last")),
            bool(row.get("fused_gate")), cropped(row))


def _ms(row: dict | None) -> str:
    return "–" if row is None else f"{row['time_median_s'] * 1e3:.1f}"


def _mib(row: dict | None) -> str:
    return "–" if row is None or row["peak_memory_mib"] is None else f"{row['peak_memory_mib']:,.0f}"


def piano_variants_markdown(bench_dir: Path) -> str:
    """Every committed piano Seq-U-Net row beside the WaveNet of the same precision, execution and layout (from
    the same file, or the newest file that has it), and the fastest step at batch 16 against the goal."""
    bench = load_bench(bench_dir, "training*.json", full_only=True)
    wavenets = {}
    for _, result in reversed(bench):          # oldest first: the newest measurement of a key wins
        for r in result["rows"]:
            if r["task"] == "piano_audio" and r["arch"] == "wavenet":
                wavenets[piano_key(result["meta"], r)] = r
    rows = ["| file | GPU | variant | batch | Seq-U-Net ms | WaveNet ms | Seq-U-Net MiB | WaveNet MiB | time ratio | "
            "memory ratio |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    fastest = None
    for path, result in bench:
        meta = result["meta"]
        for r in sorted((r for r in result["rows"] if r["task"] == "piano_audio" and r["arch"] == "sequnet"),
                        key=lambda r: (r["batch"], bool(r.get("channels_last")), bool(r.get("fused_gate")),
                                       cropped(r))):
            w = wavenets.get(piano_key(meta, r)) or {}
            rows.append(f"| `{path.name}` | {meta['device']} | {variant(meta, r)} | {r['batch']} | {_ms(r)} | "
                        f"{_ms(w or None)} | {_mib(r)} | {_mib(w or None)} | "
                        f"{fmt(ratio(r['time_median_s'], w.get('time_median_s')))} | "
                        f"{fmt(ratio(r['peak_memory_mib'], w.get('peak_memory_mib')))} |")
            if r["batch"] == 16 and (fastest is None or r["time_median_s"] < fastest[1]["time_median_s"]):
                fastest = (path, r, meta)
    if len(rows) == 2:
        return "No piano training-step benchmark committed yet."
    text = "\n".join(rows)
    if fastest:
        path, r, meta = fastest
        text += (f"\n\nFastest Seq-U-Net step at batch 16: **{r['time_median_s'] * 1e3:.1f} ms**, peak "
                 f"{r['peak_memory_mib']:,.0f} MiB ({variant(meta, r)}, {meta['device']}, `{path.name}`); the official "
                 f"code: 123 ms and 9.05 GiB. Goal: <= 25 ms in bf16, <= 45 ms without.")
    return text


def plain(meta: dict, row: dict) -> bool:
    """Whether a row ran the model as written: float32, eager, uncompiled, default layout, no fused gate, nothing
    cropped."""
    return not (meta.get("bf16") or meta.get("cuda_graphs") or meta.get("compile") or row.get("channels_last")
                or row.get("fused_gate") or cropped(row))


def _mode(meta: dict, row: dict) -> tuple[bool, bool]:
    """A row's precision and execution: (bf16, compiled); piano_step.py's rows say it themselves."""
    return bool(row.get("bf16", meta.get("bf16"))), bool(row.get("compile", meta.get("compile")))


def _settings(row: dict) -> str:
    """A piano-step row's compiler settings, comparable across rows."""
    return json.dumps(row.get("config_patches") or {}, sort_keys=True)


def plain_and_best_markdown(bench_dir: Path) -> str:
    """Every pair's ratios twice, per GPU and batch: both models plain, measured side by side in one file; and each
    model at its fastest committed step, whatever speed-ups that took (the benchmarks give each speed-up to both
    models of a pair wherever it applies), and at its smallest committed peak. The best of each model is taken
    among the precisions and executions (bf16 or not, compiled or not) that both models were measured in on that
    GPU: a speed-up measured for one model only (2026-12-05, an H100 that compiled the Seq-U-Net's step alone) is
    not given to one side of the ratio."""
    found: dict[tuple, dict[str, list]] = {}
    # the piano steps of benchmarks/piano_step.py (each variant given to both models where it applies) are
    # candidates for the best; none of them is plain (all are replayed from CUDA graphs); a variant that failed
    # (its row holds the error) is none, nor one whose cuDNN plans were not those its name says
    # (piano_steps.CUDNN_PLANS)
    steps = [(p, {**r["meta"], "piano_step": True},
              [{**row, "task": "piano_audio"} for row in r["rows"] if "error" not in row and "cudnn_plans" not in row])
             for p, r in load_bench(bench_dir, "piano-step*.json", full_only=True)]
    # a compiler setting (piano_step.py's inductor. and functorch. words) tried on one model only is not given to
    # one side of the ratio: its rows compete only where the other model ran with the same setting on that GPU
    tried = {(m["device"], r["arch"], _settings(r)) for _, m, rows in steps for r in rows}
    steps = [(p, m, [r for r in rows if not r.get("config_patches") or (
        m["device"], "wavenet" if r["arch"] == "sequnet" else "sequnet", _settings(r)) in tried])
        for p, m, rows in steps]
    for path, meta, rows in [(p, r["meta"], r["rows"]) for p, r in load_bench(bench_dir, "training*.json",
                                                                              full_only=True)] + steps:
        for r in rows:            # newest file first, within each kind
            found.setdefault((meta["device"], r["task"], r["batch"]), {}).setdefault(r["arch"], []).append(
                (path, meta, r))
    lines = ["| GPU | task | batch | plain: Seq-U-Net / baseline ms | plain: time, memory ratio | best: Seq-U-Net ms "
             "(how) | best: baseline ms (how) | best: time, memory ratio | paper: time, memory ratio |",
             "|---|---|---:|---:|---:|---|---|---:|---:|"]
    order = {task: i for i, task in enumerate(TABLE1_TASKS)}
    for (device, task, batch), arms in sorted(found.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99),
                                                                              kv[0][2])):
        ours, theirs = arms.get("sequnet", []), arms.get(baseline_arch(task), [])
        if not ours or not theirs:
            continue
        side_by_side = [(s, b) for s in ours for b in theirs
                        if s[0] == b[0] and plain(s[1], s[2]) and plain(b[1], b[2])]
        s, b = side_by_side[0] if side_by_side else (None, None)
        plain_cells = ("–", "–") if s is None else (
            f"{_ms(s[2])} / {_ms(b[2])}", f"{fmt(ratio(s[2]['time_median_s'], b[2]['time_median_s']))}, "
            f"{fmt(ratio(s[2]['peak_memory_mib'], b[2]['peak_memory_mib']))}")
        common = {_mode(*x[1:]) for x in ours} & {_mode(*x[1:]) for x in theirs}
        ours, theirs = ([x for x in rows if _mode(*x[1:]) in common] for rows in (ours, theirs))
        if not ours:
            continue
        fast = [min(rows, key=lambda x: x[2]["time_median_s"]) for rows in (ours, theirs)]
        small = [min((x[2]["peak_memory_mib"] for x in rows if x[2]["peak_memory_mib"] is not None), default=None)
                 for rows in (ours, theirs)]
        paper_time, paper_mem = paper_ratios(task)
        lines.append(f"| {device} | {task} | {batch} | {plain_cells[0]} | {plain_cells[1]} | "
                     + " | ".join(f"{_ms(r)} ({variant(meta, r)}, `{path.name}`)" for path, meta, r in fast)
                     + f" | {fmt(ratio(fast[0][2]['time_median_s'], fast[1][2]['time_median_s']))}, "
                     f"{fmt(ratio(*small))} | {paper_time:.2f}, {paper_mem:.2f} |")
    return "\n".join(lines) if len(lines) > 2 else "No full training benchmark committed yet."


def sweep_piano_point(result: dict) -> str | None:
    """A complexity sweep contains Table 1's piano point (batch 2, 5000 outputs): its ratios beside the paper's."""
    point = {r["arch"]: r for r in result["rows"] if r["sweep"] == "length" and r["output_length"] in (5000, 5120)}
    if len(point) != 2:
        return None
    s, w = point["sequnet"], point["wavenet"]
    p, q = PAPER_TABLE1["piano_audio", "sequnet"], PAPER_TABLE1["piano_audio", "wavenet"]
    paper_time, paper_mem = paper_ratios("piano_audio")
    return (f"Piano, batch 2, {result['meta']['device']}: Seq-U-Net {s['time_median_s'] * 1e3:.1f} ms / "
            f"{s['peak_memory_mib']:.0f} MiB, WaveNet {w['time_median_s'] * 1e3:.1f} ms / "
            f"{w['peak_memory_mib']:.0f} MiB: ratios {s['time_median_s'] / w['time_median_s']:.2f} (time), "
            f"{s['peak_memory_mib'] / w['peak_memory_mib']:.2f} (memory); paper {paper_time:.2f}, {paper_mem:.2f} "
            f"({p['time_s'] * 1e3:.0f} ms / {p['mem_mb']:.0f} MB vs {q['time_s'] * 1e3:.0f} ms / {q['mem_mb']:.0f} MB)")


def generation_markdown(path: Path, bench: dict) -> str:
    """One generation benchmark: samples per second per model, batch, dtype and mode, and the reduced-precision
    deviations when it measured them."""
    meta = bench["meta"]
    # a file that compares the per-layer kernels has several rows per model, batch and dtype: the kernel tells them
    # apart (with GPU operations per step, the launches a step costs)
    kernels = any("kernel" in r for r in bench["rows"])
    extra = " kernel | GPU ops/step |" if kernels else ""
    lines = [f"**{path.name}**: {meta['device']}, torch {meta['torch']}, {meta['date'][:10]}{at_commit(meta)}", "",
             f"| model | batch | dtype | mode |{extra} samples/s | µs/step | x real time (16 kHz) |",
             "|---|---:|---|---|" + ("---|---:|" if kernels else "") + "---:|---:|---:|"]
    for r in bench["rows"]:
        cells = f" {kernel_name(r)} | {fmt_count(r.get('ops_per_step'))} |" if kernels else ""
        lines.append(f"| {r['model']} | {r['batch']} | {r['dtype']} | {r['mode']} |{cells} "
                     f"{r['samples_per_s']:,.0f} | {r['step_us']:.1f} | {r['samples_per_s'] / 16000:.1f} |")
    acc = bench.get("accuracy", [])
    if acc:
        lines += ["", f"Reduced precision against float32 over {acc[0]['steps']} teacher-forced steps:", "",
                  "| model | dtype | max abs logit deviation | argmax agreement |", "|---|---|---:|---:|"]
        lines += [f"| {a['model']} | {a['dtype']} | {a['max_abs_logit_dev']:.2g} | {a['argmax_agreement']:.1%} |"
                  for a in acc]
    return "\n".join(lines)


def kernel_name(row: dict) -> str:
    """A generation row's per-layer kernel, "+pdl" where its kernels were launched with programmatic dependent
    launch (``benchmarks/generation.py --pdl``), and ", torch bookkeeping" where a Triton path's step kept its
    window shifts and ring rows in torch operations (``--step-kernels off``; rows from before the step kernels
    carry no mark), ", start in head" where the head kernel ran each next step's start (``--step-kernels head``),
    the steps per multi-step graph and rowdot's least of programs where not the default (``--chunk``,
    ``--rowdot-programs``), and split-K's tile where the row records it (``--splitk-tiles``; rows from before
    carry none and ran 64 x 64; since 2026-12-07 the default is the rule's, "tiles by shape"). Since 8025e91 a row
    says ", splits in a loop" where split-K's activation did not unroll its sum (``SEQUNET_SPLITS_UNROLLED=0``,
    as every split-K row before), and ", unaligned" where its timed steps started one short of a multi-step graph
    (``--unaligned``, as every row before)."""
    chunk, tile, least = row.get("chunk"), row.get("splitk_tile"), row.get("rowdot_programs")
    return (row.get("kernel", "–") + ("+pdl" if row.get("pdl") else "")
            + (", torch bookkeeping" if row.get("step_kernels") is False and row.get("fused_activation") else "")
            + (", start in head" if row.get("start_in_head") else "")
            + (f", {chunk}-step graphs" if chunk not in (None, InferenceState.CHUNK) else "")
            + (", tiles by shape" if tile == "rule" else f", {tile} tiles" if tile else "")
            + (f", {least}+ programs" if least not in (None, kernels.ROWDOT_PROGRAMS) else "")
            + (", splits in a loop" if row.get("kernel") == "splitk" and row.get("splits_unrolled") is False else "")
            + (", unaligned" if row.get("chunk_aligned") is False and row.get("mode") == "graphs" else ""))


def plot_generation(bench: dict):
    """Samples per second of the float32 rows (of the first row's dtype in a file without any) as horizontal bars
    on a log scale, one row per batch and kernel, with real time at 16 kHz marked."""
    import matplotlib.pyplot as plt

    dtypes = [r["dtype"] for r in bench["rows"]]
    dtype = "float32" if "float32" in dtypes or not dtypes else dtypes[0]
    rows = [r for r in bench["rows"] if r["dtype"] == dtype]
    with plt.rc_context(STYLE):
        # a bar's label stands on its own line, however many kernels and graph lengths a file compares
        fig, ax = plt.subplots(figsize=(MAX_WIDTH_IN, max(3.0, 1.4 + 0.32 * len(rows))))
        for model, colour, label in (("sequnet", "C0", "Seq-U-Net"), ("wavenet", "C1", "WaveNet")):
            at = [i for i, r in enumerate(rows) if r["model"] == model]
            ax.barh(at, [rows[i]["samples_per_s"] for i in at], color=colour, label=label)
        ax.axvline(16000, color="k", ls="--", lw=1, label="real time, 16 kHz")
        ax.set_xscale("log")
        # the model is the bar's colour; beside it the batch and the per-layer kernel (or the mode, in older files)
        ax.set_yticks(range(len(rows)), [f"batch {r['batch']}, {kernel_name(r) if 'kernel' in r else r['mode']}"
                                         for r in rows])
        ax.invert_yaxis()           # the file's order, top to bottom
        ax.set_ylabel("batch, " + ("per-layer kernel" if any("kernel" in r for r in rows) else "mode"))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=3)    # below the axis: no bar hidden
        ax.set(xlabel="samples per second", title=f"Cached generation, {dtype}, {bench['meta']['device']}")
        fig.tight_layout()
    return fig


def batch_window(row: dict) -> str:
    """A breakdown row's batch, with its window's multiple of the paper's where the sweep lengthened it."""
    multiple = row.get("window_multiple", 1)
    return str(row["batch"]) + ("" if multiple == 1 else f" (×{multiple})")


def breakdown_markdown(bench_dir: Path) -> str:
    """The newest ``breakdown*.json`` (benchmarks/breakdown.py): each Table 1 language and music model's peak memory
    taken apart and its step's GPU operations and FLOPs, Seq-U-Net beside its TCN."""
    found = load_bench(bench_dir, "breakdown*.json", full_only=True)
    if not found:
        return "No breakdown committed yet: run `python benchmarks/breakdown.py --out results/bench/breakdown.json`."
    path, result = found[0]
    meta = result["meta"]

    def f(v, fmt=",.0f"):
        return "–" if v is None else format(v, fmt)

    partial = "" if meta.get("complete", True) else \
        f" Stopped by its call's time limit after {meta['measured']} of {meta['planned']} pairs."
    rows = [f"`{path.name}`: {meta['device']}, torch {meta['torch']}, {meta['date'][:10]}{at_commit(meta)}, float32."
            f"{partial}", "",
            "| task | model | batch (window) | params + grads + Adam MiB | saved activations MiB | "
            "rest of the peak MiB | peak MiB | GPU operations | GFLOP | ms (graphed) | TFLOP/s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        best = r.get("graph_time_s") or r["eager_time_s"]
        rows.append(f"| {r['task']} | {r['arch']} | {batch_window(r)} | "
                    f"{f(r['params_mib'] + r['grads_mib'] + r['adam_mib'])} "
                    f"| {f(r['saved_activations_mib'])} | {f(r.get('remainder_mib'))} | {f(r['eager_peak_mib'])} | "
                    f"{f(r['gpu_operations_per_step'])} | {r['flops_per_step'] / 1e9:,.1f} | {best * 1e3:.2f}"
                    f"{'' if r.get('graph_time_s') else ' (eager)'} | {r['tflops_per_s']:.1f} |")
    # Seq-U-Net over TCN at each batch and window (breakdown.py's ratio_* fields), beside the paper's Table 1
    rows += ["", "Seq-U-Net / TCN at each batch and window (Table 1 on a GTX 1080: char-PTB 0.41 in time and 0.68 in "
             "memory, word-PTB 0.49 and 0.66):", "",
             "| task | batch (window) | FLOPs | saved activations | peak memory | time (graphed, else eager) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        if "ratio_flops_per_step" not in r:
            continue
        time = r.get("ratio_graph_time_s") or r.get("ratio_eager_time_s")
        rows.append(f"| {r['task']} | {batch_window(r)} | "
                    f"{f(r['ratio_flops_per_step'], '.2f')} | {f(r.get('ratio_saved_activations_mib'), '.2f')} | "
                    f"{f(r.get('ratio_eager_peak_mib'), '.2f')} | {f(time, '.2f')} |")
    rows += ["", "Each model's step time fitted over the batch sweep as a fixed cost plus its FLOPs at one rate "
             "(`sequnet.analysis.step_model`):", "", step_model.fit_markdown(result)]
    return "\n".join(rows)
