"""Every published chapter shows what its result records say (issue 19: the char-PTB chapter showed a peak memory
its record had corrected)."""
from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from sequnet.publish import chapter_records
from sequnet.publish.paths import RESULTS

PUBLISHED = sorted(p for p in (RESULTS / "published").glob("*.ipynb") if chapter_records.chapter_records(p))


@pytest.mark.parametrize("notebook", PUBLISHED, ids=[p.stem for p in PUBLISHED])
def test_published_chapter_tables_agree_with_their_records(notebook):
    nb = nbformat.read(notebook, as_version=4)
    tables = [t for _, _, text in chapter_records._text_outputs(nb) for t in chapter_records.markdown_tables(text)]
    assert any("peak MiB" in row for t in tables for row in t), f"{notebook.name}: no result table found"
    found = chapter_records.disagreements(nb, chapter_records.chapter_records(notebook),
                                          chapter_records.chapter_points(notebook))
    assert found == []


def _tcn_row_changed(line: str) -> str:
    """The result table's TCN row with its test score 9.999 and its peak memory 282.5 MiB (columns 5 and 7)."""
    if not line.startswith("| TCN |"):
        return line
    cells = line.split("|")
    cells[5], cells[7] = " 9.999 ", " 282.5 "
    return "|".join(cells)


def test_a_number_that_differs_from_the_record_is_found_and_refresh_redraws_it(tmp_path):
    source = RESULTS / "published" / "music_jsb.ipynb"
    notebook = tmp_path / "music_jsb.ipynb"
    shutil.copy(source, notebook)
    shutil.copytree(RESULTS / "published" / "music_jsb" / "records", tmp_path / "music_jsb" / "records")
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/markdown")
            if text and "peak MiB" in text:     # the TCN's memory, its test score, and the ratio line
                out["data"]["text/markdown"] = re.sub(r"peak memory \d\.\d\d", "peak memory 0.06",
                                                      "\n".join(_tcn_row_changed(line) for line in text.split("\n")))
            elif text and "levels × kernel" in text:
                out["data"]["text/markdown"] = text.replace("534,468", "534,469")
    nbformat.write(nb, notebook)
    records = chapter_records.chapter_records(notebook)
    found = chapter_records.disagreements(nbformat.read(notebook, as_version=4), records)
    assert len(found) == 4, found
    assert any("TCN, peak MiB: shows 282.5" in p for p in found) and any("TCN, test: shows 9.999" in p for p in found)
    assert any("TCN, params: shows 534,469" in p for p in found) and any("ratio of peak memory" in p for p in found)
    assert chapter_records.refresh(notebook) == 3     # the table, the learning curves, the cost figure
    after = nbformat.read(notebook, as_version=4)
    # The configuration table is not redrawn (it shows what was configured), the result table is.
    assert [p for p in chapter_records.disagreements(after, records) if "params: shows 534,469" not in p] == []


@pytest.mark.parametrize("cell, value, ok", [("702.4", 702.408, True), ("2526.4", 702.408, False),
                                              ("0.00014", 0.00014, True), ("6.7e-05", 6.7e-05, True),
                                              ("off", None, True), ("100 s", 100.0, True), ("–", 1.0, False),
                                              ("5,923,249", 5923249, True), ("1.31", 1.3086, True)])
def test_a_shown_number_matches_to_its_printed_precision(cell, value, ok):
    assert chapter_records._shown_matches(cell, value) is ok
