"""A published chapter must show what its result records say: the numbers of its result table
(:func:`sequnet.analysis.reports.comparison_markdown`), of its cost figure (``plot_costs``) and of its
configuration table come from the records in ``results/published/<chapter>/records/``.

A record can be corrected after its notebook ran (the char-PTB peak memory was: see that record's notes); the
executed notebook then still shows the old number. :func:`disagreements` finds every such number and
:func:`refresh` renders the result table and the figures again from the records, in the executed notebook, with
a line saying so (``python -m sequnet.publish.chapter_records results/published/char_ptb.ipynb``; with
``--figures-only`` it redraws only the figures, e.g. after a change of the figure helpers' style).
"""
from __future__ import annotations

import base64
import io
import json
import math
import re
from pathlib import Path

from sequnet.core.configs import ARCH_LABELS
from sequnet.experiment.records import ResultRecord
from sequnet.publish.table1 import steps_trained

MODELS = {label: arch for arch, label in ARCH_LABELS.items()}
# Result-table columns of ours and how each is read from a record.
RESULT_COLUMNS = {
    "params": lambda r: r.params,
    "train": lambda r: r.metrics.get("train"),
    "valid": lambda r: r.metrics.get("valid"),
    "test": lambda r: r.metrics.get("test"),
    "ms/step": lambda r: None if r.time_per_step_s is None else 1000 * r.time_per_step_s,
    "peak MiB": lambda r: r.peak_memory_mib,
}
# Configuration-table columns that a record's config states (the model's shape is checked through params).
CONFIG_COLUMNS = {
    "params": lambda r: r.params,
    "epochs": lambda r: r.config.get("epochs"),
    "batch": lambda r: r.config.get("batch_size"),
    "lr": lambda r: r.config.get("lr"),
    "clip": lambda r: r.config.get("clip"),
    "time budget": lambda r: r.config.get("time_budget_s"),
}
# A row at other steps than its record's (the piano chapter's equal-iteration and equal-time tables) shows one of
# the run's comparison points (``comparison.json``): its columns and the point's keys.
POINT_COLUMNS = {"train": "train_bits", "test": "test_bits", "training loss": "train_loss_bits",
                 "train time (s)": "train_seconds"}
RATIO_LINE = re.compile(r"^Seq-U-Net / (\w+): (.*?) \(", re.M)
REFRESHED = ("*This table and the figures above were drawn again from the result records after the run, because a "
             "record was corrected after it (its notes say what and why).*")


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """The pipe tables in ``text``, each as rows of {header: cell}."""
    tables, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in line.strip("|").split("|")]
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(header, (c.strip() for c in row.strip("|").split("|")))))
            tables.append(rows)
    return tables


def _shown_matches(cell: str, value) -> bool:
    """Whether a table cell shows ``value`` to the precision it prints (``–`` for none; ``off`` for no clipping;
    ``100 s`` for a time budget)."""
    cell = cell.replace(",", "").removesuffix(" s").strip()
    if value is None:
        return cell in ("–", "off", "none")
    if isinstance(value, float) and not math.isfinite(value):
        return cell == "–"
    try:
        shown = float(cell)
    except ValueError:
        return False
    mantissa = cell.lower().split("e")[0]
    places = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(cell.lower().split("e")[1]) if "e" in cell.lower() else 0
    return abs(shown - value) <= 0.5 * 10.0 ** (exponent - places) * (1 + 1e-9) + 1e-12 * abs(value)


def _text_outputs(nb):
    """(cell index, output, Markdown text) of every Markdown output in the notebook."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/markdown")
            if text:
                yield i, out, "".join(text) if isinstance(text, list) else text


def _point_problems(i: int, row: dict[str, str], arch: str, steps: int, points: dict) -> list[str]:
    """A row at ``steps`` that are not its record's: the numbers of the run's comparison point at those steps."""
    found = [p for p in points.get(arch, []) if p.get("steps") == steps]
    if not found:
        return [f"cell {i}, {row['model']}: a row at {steps:,} steps, which neither its record nor the run's "
                f"comparison points have"]
    return [f"cell {i}, {row['model']} at {steps:,} steps, {column}: shows {row[column]}, comparison.json says "
            f"{found[0].get(key)}" for column, key in POINT_COLUMNS.items()
            if column in row and not _shown_matches(row[column], found[0].get(key))]


def disagreements(nb, records: list[ResultRecord], points: dict[str, list[dict]] | None = None) -> list[str]:
    """Every number of the chapter's result and configuration tables (and of the Seq-U-Net-to-baseline ratio
    line) that differs from its record, as "cell N, MODEL, COLUMN: shows X, the record says Y". ``points``
    (:func:`chapter_points`): the run's comparison points per model, which rows at other steps than the record's
    must show."""
    by_model = {r.model: r for r in records}
    problems = []
    for i, _, text in _text_outputs(nb):
        for table in markdown_tables(text):
            for row in table:
                arch = MODELS.get(row.get("model", ""))
                if arch is None:
                    continue
                if arch not in by_model:
                    problems.append(f"cell {i}: a row for {row['model']} but no record of it")
                    continue
                shown_steps = row.get("steps", "").replace(",", "")
                if shown_steps.isdigit() and int(shown_steps) != steps_trained(by_model[arch]):
                    problems += _point_problems(i, row, arch, int(shown_steps), points or {})
                    continue
                columns = RESULT_COLUMNS if "test" in row else CONFIG_COLUMNS
                for column, read in columns.items():
                    if column in row and not _shown_matches(row[column], read(by_model[arch])):
                        problems.append(f"cell {i}, {row['model']}, {column}: shows {row[column]}, the record "
                                        f"says {read(by_model[arch])}")
        for match in RATIO_LINE.finditer(text):
            base, ours = MODELS.get(match.group(1)), by_model.get("sequnet")
            if base not in by_model or ours is None:
                continue
            for name, pair in (("time per step", "time_per_step_s"), ("peak memory", "peak_memory_mib")):
                found = re.search(rf"{name} ([\d.]+)", match.group(2))
                a, b = getattr(ours, pair), getattr(by_model[base], pair)
                if found and (a is None or b is None or not _shown_matches(found.group(1), a / b)):
                    problems.append(f"cell {i}, ratio of {name}: shows {found.group(1)}, the records give "
                                    f"{'none' if a is None or b is None else f'{a / b:.3f}'}")
    return problems


def chapter_records(notebook: Path) -> list[ResultRecord]:
    """The result records a published chapter wrote: ``<folder>/<name>/records/*.json``."""
    return [ResultRecord.load(p) for p in sorted((notebook.parent / notebook.stem / "records").glob("*.json"))]


def chapter_points(notebook: Path) -> dict[str, list[dict]]:
    """The comparison points of a published chapter's run (``<folder>/<name>/comparison.json``, the piano run's
    equal-iteration, equal-time and end points) per model; empty for a chapter without one."""
    path = notebook.parent / notebook.stem / "comparison.json"
    if not path.is_file():
        return {}
    points: dict[str, list[dict]] = {}
    for group in json.loads(path.read_text()).values():
        for arch, point in (group.items() if isinstance(group, dict) else ()):
            if isinstance(point, dict) and "steps" in point:
                points.setdefault(arch, []).append(point)
    return points


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _redraw(fig, data: dict, files) -> None:
    """Put ``fig`` in an output's PNG and in the figure files the notebook saved it to (temporary name, rename)."""
    import matplotlib.pyplot as plt

    data["image/png"] = _png(fig)
    for path in files:
        tmp = path.with_name(path.stem + ".tmp.png")
        fig.savefig(tmp, dpi=120)
        tmp.replace(path)
    plt.close(fig)


def refresh(notebook: Path, tables: bool = True) -> int:
    """Draw an executed chapter's learning curves and cost figure again from its records with the current figure
    helpers (and their files under ``figures/``), and with ``tables`` its result table too, marked as redrawn;
    returns how many outputs were replaced. The notebook is written to a temporary name and renamed into place."""
    import matplotlib
    import nbformat

    matplotlib.use("Agg")
    from sequnet.analysis.reports import comparison_markdown, plot_costs, plot_learning_curves

    nb = nbformat.read(notebook, as_version=4)
    records = chapter_records(notebook)
    order = {"tcn": 0, "wavenet": 0, "sequnet": 1}
    records.sort(key=lambda r: order.get(r.model, 2))
    if not records:
        raise SystemExit(f"{notebook}: no records in {notebook.parent / notebook.stem / 'records'}")
    figures = notebook.parent / notebook.stem / "figures"
    replaced = 0
    for cell in nb.cells:
        source = cell.get("source", "")
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if tables and "comparison_markdown(records)" in source and "text/markdown" in data:
                data["text/markdown"] = comparison_markdown(records) + "\n\n" + REFRESHED
                data["text/plain"] = "<IPython.core.display.Markdown object>"
            elif "plot_costs(records)" in source and "image/png" in data:
                _redraw(plot_costs(records), data, figures.glob("*_costs.png"))
            elif "plot_learning_curves(records" in source and "image/png" in data:
                x = "time" if 'x="time"' in source else "epoch"
                _redraw(plot_learning_curves(records, x=x), data, figures.glob("*_curves.png"))
            else:
                continue
            replaced += 1
    tmp = notebook.with_suffix(".tmp.ipynb")
    nbformat.write(nb, tmp)
    tmp.replace(notebook)
    return replaced


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Draw a published chapter's figures (and result table) again "
                                                 "from its result records.")
    parser.add_argument("notebooks", nargs="+", type=Path, metavar="NOTEBOOK.ipynb")
    parser.add_argument("--figures-only", action="store_true", help="leave the result table as it is")
    args = parser.parse_args()
    for path in args.notebooks:
        print(f"{path}: {refresh(path, tables=not args.figures_only)} output(s) drawn again from the records")
