"""A published chapter must show what its result records say: the numbers of its result table
(:func:`sequnet.analysis.reports.comparison_markdown`), of its cost figure (``plot_costs``) and of its
configuration table come from the records in ``results/published/<chapter>/records/``.

A record can be corrected after its notebook ran (the char-PTB peak memory was: see that record's notes); the
executed notebook then still shows the old number. :func:`disagreements` finds every such number and
:func:`refresh` renders the result table and the cost figure again from the records, in the executed notebook, with
a line saying so. ``python -m sequnet.publish.chapter_records results/published/char_ptb.ipynb`` does that.
"""
from __future__ import annotations

import base64
import io
import math
import re
import sys
from pathlib import Path

from sequnet.core.configs import ARCH_LABELS
from sequnet.experiment.records import ResultRecord

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
RATIO_LINE = re.compile(r"^Seq-U-Net / (\w+): (.*?) \(", re.M)
REFRESHED = ("*This table and the cost figure were drawn again from the result records after the run, because a "
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


def disagreements(nb, records: list[ResultRecord]) -> list[str]:
    """Every number of the chapter's result and configuration tables (and of the Seq-U-Net-to-baseline ratio
    line) that differs from its record, as "cell N, MODEL, COLUMN: shows X, the record says Y"."""
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


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def refresh(notebook: Path) -> int:
    """Render the result table and the cost figure of an executed chapter again from its records (and the cost
    figure's file under ``figures/``); returns how many outputs were replaced. The notebook is written to a
    temporary name and renamed into place."""
    import matplotlib
    import nbformat

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sequnet.analysis.reports import comparison_markdown, plot_costs

    nb = nbformat.read(notebook, as_version=4)
    records = chapter_records(notebook)
    order = {"tcn": 0, "wavenet": 0, "sequnet": 1}
    records.sort(key=lambda r: order.get(r.model, 2))
    if not records:
        raise SystemExit(f"{notebook}: no records in {notebook.parent / notebook.stem / 'records'}")
    replaced = 0
    for cell in nb.cells:
        source = cell.get("source", "")
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "comparison_markdown(records)" in source and "text/markdown" in data:
                data["text/markdown"] = comparison_markdown(records) + "\n\n" + REFRESHED
                data["text/plain"] = "<IPython.core.display.Markdown object>"
                replaced += 1
            elif "plot_costs(records)" in source and "image/png" in data:
                fig = plot_costs(records)
                data["image/png"] = _png(fig)
                for path in (notebook.parent / notebook.stem / "figures").glob("*_costs.png"):
                    fig.savefig(path.with_suffix(".tmp.png"), dpi=120)
                    path.with_suffix(".tmp.png").replace(path)
                plt.close(fig)
                replaced += 1
    tmp = notebook.with_suffix(".tmp.ipynb")
    nbformat.write(nb, tmp)
    tmp.replace(notebook)
    return replaced


if __name__ == "__main__":
    for arg in sys.argv[1:] or sys.exit("usage: python -m sequnet.publish.chapter_records NOTEBOOK.ipynb ..."):
        print(f"{arg}: {refresh(Path(arg))} output(s) drawn again from the records")
