"""The reduced-cost hyper-parameter searches on the reproduction page (issue 20 part 3): summaries found and read,
each set beside Table 3's setting over the same first epochs of the cell's seeds."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sequnet.experiment.scales import resolve
from sequnet.publish import reproduction
from sequnet.publish.searches import find_searches, first_epochs_best, search_rows
from test_reproduction import run

REPO = Path(__file__).resolve().parents[1]


def summary(task="nottingham", trials=None, planned=20, complete=True, epochs=10) -> dict:
    trials = trials if trials is not None else [
        {"lr": 0.0056, "clip": 0.2, "status": "ok", "valid_loss": 3.84, "note": ""},
        {"lr": 0.0217, "clip": None, "status": "fail", "valid_loss": None, "note": "diverged in epoch 1"},
        {"lr": 0.00108, "clip": 0.904, "status": "ok", "valid_loss": 3.119, "note": ""}]
    return {"task": task, "arch": "sequnet", "scale": "paper", "seed": 1111, "search_seed": 0, "space": "...",
            "objective": "...", "deviations": {"epochs": epochs}, "notes": f"paper preset changed: epochs={epochs}",
            "complete": complete, "trials_planned": planned, "lr": 0.00108, "clip": 0.904,
            "best_valid_loss": 3.119, "trials": trials}


def write(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_summaries_are_found_once_each_with_the_most_trials(tmp_path):
    write(tmp_path / "a" / "hpo_nottingham_sequnet_paper.json", summary(trials=summary()["trials"][:2]))
    write(tmp_path / "b" / "hpo_nottingham_sequnet_paper.json", summary())
    write(tmp_path / "hpo_muse_sequnet_paper.json", summary("muse"))
    write(tmp_path / "hpo_widget.json", {"state": 1})                  # not a summary: skipped
    (tmp_path / "hpo_empty.json").write_text("")                       # unreadable, not a summary: skipped
    found = find_searches([tmp_path, tmp_path / "missing"])
    assert [(s.task, len(s.trials)) for s in found] == [("muse", 3), ("nottingham", 3)]
    best = found[1].best
    assert (best["lr"], best["clip"], best["valid_loss"]) == (0.00108, 0.904, 3.119) and found[1].epochs == 10


def test_a_damaged_summary_stops_the_build_naming_its_file(tmp_path):
    bad = summary()
    bad["trials"][0]["lr"] = "fast"
    path = write(tmp_path / "hpo_nottingham_sequnet_paper.json", bad)
    with pytest.raises(SystemExit, match=f"{path}.*cannot be read.*table1_hpo.sh"):
        find_searches([tmp_path])


def test_table_3s_setting_is_read_over_the_same_first_epochs_of_each_seed():
    def seeded(seed, losses):
        r = run(3.0, seed=seed, experiment="nottingham")
        for epoch, loss in zip(r.history, losses):
            epoch["valid_loss"] = loss
        return r
    records = [seeded(1111, [5.0, 3.3, 3.2] + [2.9] * 97), seeded(1, [5.0, 3.4, 3.5] + [2.8] * 97)]
    assert first_epochs_best(records, "nottingham", "sequnet", 3) == [3.2, 3.4]
    assert first_epochs_best(records, "nottingham", "sequnet", 100) == [2.9, 2.8]
    assert first_epochs_best(records, "muse", "sequnet", 3) == []


def section(searches, records) -> list[list[str]]:
    page = reproduction.reproduction_markdown(records, ["results"], searches)
    part = page.split("### The paper's search at reduced cost")[1].split("###")[0]
    return [[c.strip() for c in line.split("|")[1:-1]] for line in part.splitlines()
            if line.startswith("| M-")]


def test_the_page_shows_each_search_beside_table_3s_setting(tmp_path):
    write(tmp_path / "hpo_nottingham_sequnet_paper.json", summary(complete=False))
    r = run(3.0, experiment="nottingham")
    for epoch in r.history:
        epoch["valid_loss"] = 3.25
    (row,) = section(find_searches([tmp_path]), [r])
    assert row == ["M-Nott", "Seq-U-Net", "3 of 20, going on, 10 epochs each", "1", "0.00108", "0.904", "3.119",
                   "0.00108, off", "3.250 (1 seed)", "not yet", "2.97"]
    (row,) = section(find_searches([tmp_path]), [])
    assert row[-3] == "no seed record"
    assert "reduced cost" not in reproduction.reproduction_markdown([r], ["results"])


def test_the_committed_searches_are_on_the_page():
    """The searches of 2026-12-03 (results/paper/hpo/): MuseData's 20 trials, Nottingham's first 19."""
    records = reproduction.find_records([REPO / "results"])
    rows = {(r.search.task, r.search.arch): r for r in search_rows(find_searches([REPO / "results"]), records)}
    muse, nott = rows["muse", "sequnet"], rows["nottingham", "sequnet"]
    assert muse.search.complete and len(muse.search.trials) == 20 and muse.search.epochs == 10
    assert len(nott.search.trials) >= 19 and (nott.preset_lr, nott.preset_clip) == (0.00108, None)
    assert len(muse.preset_best) == 3 and len(nott.preset_best) == 3
    # at equal epochs the searches found a better setting than Table 3's in every seed
    assert muse.search.best["valid_loss"] < min(muse.preset_best)
    assert nott.search.best["valid_loss"] < min(nott.preset_best)


def test_runs_retrained_with_the_best_setting_are_shown_beside_the_paper(tmp_path):
    write(tmp_path / "hpo_nottingham_sequnet_paper.json", summary())
    (search,) = find_searches([tmp_path])

    def retrained_run(test, seed, lr=0.00108, clip=0.904, **kw):
        config = resolve("nottingham", "sequnet", "paper", seed=seed, lr=lr, clip=clip)
        return run(test, seed=seed, experiment="nottingham", config=config.to_dict(),
                   deviations={"lr": lr, "clip": clip}, **kw)
    records = [retrained_run(2.95, 1111), retrained_run(3.05, 1),
               retrained_run(2.5, 2, clip=0.5),                       # another setting
               retrained_run(2.5, 3, history=[{"epoch": 1}]),         # stopped early
               run(3.0, experiment="nottingham")]                      # Table 3's setting
    (row,) = search_rows([search], records)
    assert [r.seed for r in row.retrained] == [1111, 1] and row.retrained_text == "3.000 ± 0.071 (2 seeds)"
    (cells,) = section([search], records)
    assert cells[-2:] == ["3.000 ± 0.071 (2 seeds)", "2.97"]
    assert section([search], records[-1:])[0][-2] == "not yet"
