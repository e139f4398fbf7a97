"""Result records: what a record must hold to load, and the preset changes it carries as a field."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sequnet.experiment.records import RecordError, ResultRecord

REPO = Path(__file__).resolve().parents[1]


def record(**kw) -> ResultRecord:
    fields = dict(experiment="jsb", model="sequnet", scale="paper", metric="nll",
                  metrics={"train": 6.0, "valid": 8.0, "test": 8.1}, params=521938, receptive_field=12,
                  time_per_step_s=0.004, peak_memory_mib=8.0, device="cpu", wall_time_s=1.0,
                  date="2025-01-02T03:04:05+00:00", git_commit="abc1234", host="h")
    return ResultRecord(**(fields | kw))


def committed_records() -> list[Path]:
    return [p for p in sorted((REPO / "results").rglob("*.json"))
            if {"experiment", "metrics"} <= json.loads(p.read_text()).keys()]


def test_committed_records_load_with_their_preset_changes():
    loaded = {p.relative_to(REPO / "results").as_posix(): ResultRecord.load(p) for p in committed_records()}
    assert len(loaded) >= 19
    # Written before ``deviations`` was a field: the change is read from the notes, once, on loading.
    assert loaded["paper/word_ptb/variant-lr0.0002/word_ptb_sequnet.json"].deviations == {"lr": 0.0002}
    # (a seed, named as a change then, is also the record's seed; runs since never name it a change)
    seeded = loaded["paper/music_seeds/seed1/nottingham_sequnet.json"]
    assert seeded.deviations == {"seed": 1} and seeded.seed == 1
    assert loaded["paper/seeds/records/jsb_sequnet.json"].seed == 1111
    # the piano runs since 2026-12-03 count their loss spikes (the published one, 2026-12-04 at ac2192c: none in 2,614 steps)
    piano = loaded["published/piano_audio/records/piano_audio_wavenet.json"]
    assert piano.loss_spikes["steps_checked"] == 2614 and piano.loss_spikes["count"] == 0
    # the runs trained since spikes were counted: the piano run and the Table 1 seeds (named *_seedN.json, in
    # results/paper/seeds/ and in the chapters reported on seed 1); the seed-1111 runs moved beside them keep none
    seeded_name = re.compile(r"_seed\d+\.json$")
    counted = {k for k in loaded if k.startswith("published/piano_audio/") or seeded_name.search(k)}
    assert all(r.loss_spikes is None for k, r in loaded.items() if k not in counted)
    seeds = [r for k, r in loaded.items() if seeded_name.search(k)]
    assert len(seeds) >= 15 and all(r.loss_spikes["steps_checked"] > 0 and r.seed in (1, 2) for r in seeds)
    assert loaded["paper/seeds/records/muse_sequnet.json"].seed == 1111
    # MuseData Seq-U-Net seed 1 (2026-12-03): three steps of 4.5-25 x the running median, in epochs 34, 48 and 54
    assert loaded["published/music_muse/records/muse_sequnet_seed1.json"].loss_spikes["count"] == 3
    assert piano.deviations == {"max_steps_per_epoch": 100, "eval_limit": 512, "bf16": True, "time_budget_s": 490.0}
    assert loaded["paper/seeds/records/jsb_sequnet.json"].deviations == {}


def test_deviations_round_trip_and_a_given_field_wins_over_the_notes(tmp_path):
    derived = record(notes="stopped early; paper preset changed: epochs=61, lr=0.01, setting=(model changed), "
                           "bf16=True; best epoch 3")
    assert derived.deviations == {"epochs": 61, "lr": 0.01, "setting": "(model changed)", "bf16": True}
    assert ResultRecord.load(derived.save(tmp_path / "a.json")).deviations == derived.deviations
    given = record(notes="paper preset changed: epochs=61", deviations={"epochs": 5})
    assert ResultRecord.load(given.save(tmp_path / "b.json")).deviations == {"epochs": 5}


def test_seed_and_loss_spikes_round_trip(tmp_path):
    spikes = {"rule": "r", "factor": 3.0, "window": 100, "min_history": 20, "steps_checked": 9, "count": 1,
              "events": [{"epoch": 2, "step": 4, "loss": 40.0, "median": 4.0}]}
    r = record(config={"seed": 7}, loss_spikes=spikes)
    assert r.seed == 7                               # taken from the config when not given
    loaded = ResultRecord.load(r.save(tmp_path / "a.json"))
    assert loaded.seed == 7 and loaded.loss_spikes == spikes
    assert record(config={"seed": 7}, seed=3).seed == 3 and record().seed is None


@pytest.mark.parametrize("change, field", [
    ({"seed": "1111"}, "seed"),
    ({"loss_spikes": {"count": -1, "events": []}}, "loss_spikes"),
    ({"loss_spikes": {"count": 1, "events": [3]}}, "loss_spikes"),
    ({"metrics": {"train": 6.0, "valid": 8.0, "test": "n/a"}}, "metrics"),
    ({"params": "5.9M"}, "params"),
    ({"params": True}, "params"),
    ({"time_per_step_s": "fast"}, "time_per_step_s"),
    ({"device": 3}, "device"),
    ({"history": [1, 2]}, "history"),
    ({"deviations": {"epochs": [1, 2]}}, "deviations"),
])
def test_load_names_the_file_and_the_field_of_a_wrong_type(tmp_path, change, field):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(record().to_dict() | change))
    with pytest.raises(RecordError, match=re.escape(f"{path}: field {field!r}")):
        ResultRecord.load(path)


@pytest.mark.parametrize("content, problem", [
    (b"", "not valid JSON"),
    (b'{"experiment": "jsb", "model": "seq', "not valid JSON"),
    ('{"experiment": "jsb\u00e9"}'.encode("latin-1"), "not UTF-8"),
    (b"[1, 2]", "a result record is a JSON object"),
])
def test_load_names_the_file_of_a_damaged_record(tmp_path, content, problem):
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(RecordError, match=re.escape(f"{path}: {problem}")):
        ResultRecord.load(path)


def test_load_names_missing_fields(tmp_path):
    path = tmp_path / "r.json"
    data = record().to_dict()
    del data["metrics"], data["device"]
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"lacks the field\(s\) \['metrics', 'device'\]"):
        ResultRecord.load(path)


# --- property tests: many field values, one rule ------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                                          max_size=3), max_leaves=6)
FIELDS = ["metrics", "params", "receptive_field", "time_per_step_s", "peak_memory_mib", "wall_time_s", "config",
          "history", "deviations", "experiment", "device", "notes"]


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JSON_VALUES)
def test_any_field_value_loads_or_is_refused_naming_file_and_field(tmp_path_factory, field, value):
    """Whatever a damaged record holds in a field, loading either refuses it with a RecordError that names the file
    and the field, or gives a record the book's reproduction page renders (before the type checks, a metric of
    "n/a" loaded and then crashed the page with a TypeError that named no file)."""
    path = tmp_path_factory.mktemp("records") / "r.json"
    data = json.loads(json.dumps(record().__dict__)) | {field: value}
    path.write_text(json.dumps(data))
    try:
        loaded = ResultRecord.load(path)
    except RecordError as e:
        assert str(path) in str(e) and field in str(e)
    else:
        from sequnet.publish.reproduction import reproduction_markdown
        assert "Reproduction" in reproduction_markdown([loaded], ["results"])


@settings(max_examples=40, deadline=None)
@given(text=st.text(max_size=40))
def test_strings_from_a_record_are_escaped_in_the_book(text):
    from sequnet.publish.reproduction import text as book_text

    shown = book_text(text)
    assert "<" not in shown and ">" not in shown and "|" not in shown.replace("\\|", "")


def test_git_commit_marks_changed_code_but_not_changed_results(tmp_path, monkeypatch):
    """A run's commit: HEAD's, "+changes" after it where sequnet/ or benchmarks/ differ from it (a GPU machine's copy
    of the tree carried an older .git, whose commit labelled a run there), not where results do (a book build
    rewrites them before later runs' records); SEQUNET_GIT_COMMIT wins."""
    import subprocess

    from sequnet.experiment.records import git_commit

    monkeypatch.delenv("SEQUNET_GIT_COMMIT", raising=False)
    for folder in ("sequnet", "results"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.txt").write_text("1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tmp_path, capture_output=True, text=True,
                          check=True).stdout.strip()
    assert git_commit(tmp_path / "sequnet") == head
    (tmp_path / "results" / "a.txt").write_text("2\n")
    assert git_commit(tmp_path / "sequnet") == head
    (tmp_path / "sequnet" / "a.txt").write_text("2\n")
    assert git_commit(tmp_path / "sequnet") == head + "+changes"
    monkeypatch.setenv("SEQUNET_GIT_COMMIT", "given")
    assert git_commit(tmp_path) == "given"
