"""The piano run (sequnet.experiment.piano_run) at smoke scale on a CPU, on a few seconds of synthetic audio:
both models trained, Seq-U-Net's weights kept at WaveNet's step count, continuing across calls, generations,
the records' training extent, and the chapter's tables, figures, items and generation widget built from it."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import soundfile
import torch

matplotlib.use("Agg")

from sequnet.data.files import DataError  # noqa: E402
from sequnet.experiment import piano_data, piano_run  # noqa: E402
from sequnet.experiment.records import RecordError, ResultRecord  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """Two training and two test pieces of 3 s (decaying tones over a little noise) and a render manifest."""
    root = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    for split in ("train", "test"):
        (root / split).mkdir()
        for i in range(2):
            x = 0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t) * np.exp(-3 * (t % 1)) + 0.01 * rng.normal(size=len(t))
            soundfile.write(root / split / f"{split}{i}.flac", x.astype(np.float32), SR)
    (root / "manifest.json").write_text(json.dumps({  # as render-piano writes it, in part
        "renderer": {"name": "tinysoundfont", "version": "0.3", "settings": {}},
        "soundfont": {"name": "piano.sf2", "bytes": 10, "sha256": "ab" * 32, "registered_as": None}}))
    return root


def smoke(audio_dir, **changes):
    return piano_run.preset("smoke", audio_dir=str(audio_dir), **changes)


@pytest.fixture(scope="module")
def finished(audio_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    assert piano_run.run_piano(smoke(audio_dir), folder, device="cpu", log=None)
    return folder


def test_a_smoke_run_trains_compares_and_generates(finished):
    records = {a: ResultRecord.load(finished / "records" / f"piano_audio_{a}.json") for a in ("sequnet", "wavenet")}
    for r, n in zip(records.values(), (8, 6)):
        assert r.status == "ok" and r.extent["steps"] == n and r.extent["paper_steps"] == 246_000
        assert r.extent["fraction_of_paper"] == pytest.approx(n / 246_000)
        assert r.extent["train_audio_hours"] == pytest.approx(6 / 3600) and r.extent["test_pieces"] == 2
        assert r.extent["renderer"] == "tinysoundfont (0.3)"
        assert r.extent["soundfont"] == "piano.sf2 (sha256 abababababab)"
        assert r.extent["pieces"] == {"train": ["train0", "train1"], "test": ["test0", "test1"]}
        assert "/" not in r.notes.split("recordings of ")[1].split("/")[0]     # the folder's name, not its path
    comparison = json.loads((finished / "comparison.json").read_text())
    assert comparison["equal_iterations"]["sequnet"]["steps"] == comparison["equal_iterations"]["wavenet"]["steps"]
    ends, same = comparison["ends"], comparison["equal_time"]
    assert ends["wavenet"]["test_bits"] == records["wavenet"].metrics["test"]
    assert 0 < comparison["equal_iterations"]["sequnet"]["test_bits"] < 9
    assert comparison["equal_iterations"]["sequnet"]["test_bits"] != ends["sequnet"]["test_bits"]
    # equal time: the shorter budget's end, each model at its reporting interval ending nearest it
    assert same["seconds"] == min(p["train_seconds"] for p in ends.values())
    curves = json.loads((finished / "curves.json").read_text())
    for arch in ("wavenet", "sequnet"):
        i = curves[arch]["steps"].index(same[arch]["steps"])
        assert same[arch]["train_seconds"] == curves[arch]["seconds"][i]
        assert same[arch]["train_loss_bits"] == curves[arch]["train_bits"][i]
        last = i == len(curves[arch]["steps"]) - 1
        assert same[arch]["test_bits"] == (ends[arch]["test_bits"] if last else None)
    assert any(same[a]["test_bits"] is not None for a in ("wavenet", "sequnet"))
    curves = json.loads((finished / "curves.json").read_text())
    assert curves["sequnet"]["steps"] == [4, 8] and len(curves["wavenet"]["seconds"]) == 2

    ids, meta = piano_run.load_generation(finished, "long")
    assert ids["real"].shape == ids["wavenet"].shape == ids["sequnet"].shape == (2, round(0.8 * SR))
    assert np.array_equal(ids["sequnet"][:, :meta["prime_len"]], ids["real"][:, :meta["prime_len"]])
    assert meta["temperature"] == 0.95 and len(meta["sources"]) == 2
    # the listening items' continuations came in the same batch (2 + 2 primes), cut at their own length, from
    # primes of their own
    items, items_meta = piano_run.load_generation(finished, "items")
    assert items["real"].shape == items["wavenet"].shape == items["sequnet"].shape == (2, round(0.6 * SR))
    assert np.array_equal(items["wavenet"][:, :meta["prime_len"]], items["real"][:, :meta["prime_len"]])
    assert {s["batch"] for s in meta["speed"].values()} == {s["batch"] for s in items_meta["speed"].values()} == {4}
    assert items_meta["sources"] != meta["sources"]


def test_the_run_continues_across_calls_to_the_same_result(audio_dir, finished, tmp_path):
    calls = 0
    while not piano_run.run_piano(smoke(audio_dir), tmp_path, device="cpu", limit_s=0, log=None):
        calls += 1
        assert calls < 10
    assert calls >= 4           # a call with no time left does one reporting interval or one stage
    for name in ("comparison.json", "curves.json"):
        again, once = json.loads((tmp_path / name).read_text()), json.loads((finished / name).read_text())
        if name == "curves.json":
            again, once = {a: c["train_bits"] for a, c in again.items()}, {a: c["train_bits"] for a, c in once.items()}
        else:
            for data in (again, once):        # times differ between runs, and so may the equal-time point
                data.pop("equal_time")
                for point in data["ends"].values():
                    point.pop("train_seconds")
        assert again == once
    with pytest.raises(ValueError, match="holds another piano run.*budget_s"):
        piano_run.run_piano(smoke(audio_dir, budget_s=5.0), tmp_path, device="cpu", log=None)


def test_seq_u_net_is_kept_at_exactly_wavenets_step_count_inside_an_epoch(audio_dir, finished):
    from sequnet.experiment.checkpoints import load_checkpoint, seed_everything
    from sequnet.experiment.steps import train_epoch
    from sequnet.experiment.training import build

    kept = torch.load(finished / "checkpoints" / "piano_audio_sequnet_at_6.pt", weights_only=True)
    assert kept["steps"] == 6
    # the trainer's first 6 steps by hand: an epoch of 4, then 2 of the next
    run = smoke(audio_dir)
    config = piano_run.run_configs(run, "cpu")["sequnet"]
    assert config.max_steps_per_epoch == 4
    task = piano_run.make_tasks(run, {"sequnet": config}, finished)["sequnet"]
    order = seed_everything(config.seed)
    model, optimizer = build(config, torch.device("cpu"))
    for n in (4, 2):
        train_epoch(model, optimizer, task, task.train_batches(order), config, torch.device("cpu"), steps=n,
                    step_times=[], warmup_left=0)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(kept["model"][name], value)
    final = load_checkpoint(finished / "checkpoints" / "piano_audio_sequnet.pt")
    assert sum(h["steps"] for h in final["state"]["history"]) == 8
    assert any(not torch.equal(final["model"][k], kept["model"][k]) for k in kept["model"])


def test_a_compiled_run_keeps_the_models_own_weights_at_the_equal_iteration_point(audio_dir, finished, tmp_path):
    """Both models compiled (2026-12-03: the weights kept at WaveNet's step count were the compiled wrapper's, keys
    "_orig_mod.body...", and the run failed where it loads them): the uncompiled run's weights, up to rounding.
    Compiling counts as training time, so the run gets a budget that a cold compile cannot use up: with the smoke
    scale's 60 s the run kept no weights at 6 steps on the GPU machine's CPU (2026-12-05, an H100's host, no
    Inductor cache), which a finished run does only when WaveNet's budget ran out before its 6 steps (its first
    epoch, compiling, took 24 s of the 60 on a 2-core CPU without a cache)."""
    assert piano_run.run_piano(smoke(audio_dir, compile=True, budget_s=3600.0), tmp_path, device="cpu", log=None)
    assert ResultRecord.load(tmp_path / "records" / "piano_audio_wavenet.json").extent["steps"] == 6
    kept = torch.load(tmp_path / "checkpoints" / "piano_audio_sequnet_at_6.pt", weights_only=True)["model"]
    plain = torch.load(finished / "checkpoints" / "piano_audio_sequnet_at_6.pt", weights_only=True)["model"]
    assert kept.keys() == plain.keys()
    for name, value in plain.items():
        torch.testing.assert_close(kept[name], value, rtol=1e-4, atol=1e-5)
    assert all(ResultRecord.load(tmp_path / "records" / f"piano_audio_{arch}.json").config["compile"]
               for arch in ("sequnet", "wavenet"))


def test_bad_input_is_named(audio_dir, tmp_path):
    with pytest.raises(ValueError, match="scale='huge'"):
        piano_run.preset("huge")
    with pytest.raises(ValueError, match="budget_s=-1: expected a positive number"):
        piano_run.preset("smoke", budget_s=-1)
    GS = piano_data.GenerationSet
    with pytest.raises(ValueError, match="'long': primes of 1.0 s, the items' of 0.5 s.*one batch"):
        piano_run.preset("smoke", generation=(("long", GS(2, 1.0, 0.3)),))
    with pytest.raises(ValueError, match="'items' is the listening items' set"):
        piano_run.preset("smoke", generation=(("items", GS(2, 0.5, 0.3)),))
    with pytest.raises(FileNotFoundError, match="not a piano run folder"):
        piano_run.load_run(tmp_path)
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "test").mkdir()
    with pytest.raises(DataError, match="no training audio"):
        piano_run.run_piano(smoke(tmp_path / "empty"), tmp_path / "run", device="cpu", log=None)
    assert not (tmp_path / "run" / "records").exists()


def test_the_command_line_runs_the_smoke_run(audio_dir, finished, capsys, monkeypatch):
    # the finished run's folder: nothing is left to do, so the command only checks and reports; the audio folder
    # is stored relative to the run folder and found from another working directory
    monkeypatch.chdir(audio_dir / "train")
    assert piano_run.main([str(finished), "--scale", "smoke", "--audio-dir", "..", "--device", "cpu"]) == 0
    assert "piano run finished" in capsys.readouterr().out
    assert piano_run.relative_audio(audio_dir, finished) == str(Path("..") / audio_dir.name)
    monkeypatch.chdir(finished)
    run = piano_run.open_run(finished / "x", "smoke", audio_dir=audio_dir)
    assert piano_data.audio_folder(run.audio_dir, finished / "x").resolve() == audio_dir.resolve()


def test_the_chapter_reads_the_run(finished, tmp_path):
    from sequnet.analysis import piano

    table = piano.comparison_markdown(finished)
    assert "(a) Equal iterations" in table and "| Seq-U-Net | 6 | 0.0024% |" in table and "| 1.88 |" in table
    assert "(b) Equal training time" in table and "(c) Each model at the end of its budget" in table
    assert "| Seq-U-Net | 8 | 0.0033% |" in table          # its end, in (c)
    # every number of the three tables is the records' (the ends, with their costs) or comparison.json's
    import nbformat

    from sequnet.publish import chapter_records
    assert "| ms/step | peak MiB |" in table
    records = [ResultRecord.load(p) for p in sorted((finished / "records").glob("*.json"))]
    points = chapter_records.chapter_points(finished.parent / f"{finished.name}.ipynb")
    shown = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(outputs=[
        nbformat.v4.new_output("display_data", data={"text/markdown": table})])])
    assert chapter_records.disagreements(shown, records, points) == []
    row = next(line for line in table.splitlines() if line.startswith("| Seq-U-Net | 6 |"))
    cells = row.split("|")
    cells[6] = " 9.999 "                                  # the test column of the equal-iteration point
    shown.cells[0].outputs[0].data["text/markdown"] = table.replace(row, "|".join(cells))
    assert [p for p in chapter_records.disagreements(shown, records, points) if "at 6 steps, test" in p]
    assert len(piano.plot_run_curves(finished).axes) == 2
    measured = piano.long_measures(finished)
    assert set(measured) == {"real piano", "Seq-U-Net", "WaveNet"} and len(measured["WaveNet"]) == 2
    assert piano.trained_words(finished) == "Seq-U-Net 8 steps, WaveNet 6 (of the paper's 246,000)"
    figure = piano.stability_figure(measured, piano.trained_words(finished))
    assert len(figure.axes) == 3 and "WaveNet 6 (of the paper's" in figure.get_suptitle()
    assert "6 training steps, 0.0024% of the paper's 246,000" in piano.stability_claim(finished, measured)
    shown = piano.long_excerpts(tmp_path / "audio", finished, count=1)
    assert [caption for _, caption in shown[0][1]] == ["real piano", "prime + Seq-U-Net", "prime + WaveNet"]
    assert "2 listening items" in piano.write_items(tmp_path, finished)
    items = json.loads((tmp_path / "listening_items" / "items.json").read_text())
    assert "wavenet" not in json.dumps(items) and (tmp_path / "listening_items" / "listening_key.json").is_file()
    key = (tmp_path / "listening_items" / "listening_key.json").read_text()
    assert "are kept (2 items)" in piano.write_items(tmp_path, finished)           # not written again
    assert (tmp_path / "listening_items" / "listening_key.json").read_text() == key
    assert "nothing to write" in piano.write_items(tmp_path / "elsewhere", tmp_path / "no-run")
    # each item's clips are the items set's rows: the prime, then each model's continuation
    ids, meta = piano_run.load_generation(finished, "items")
    from sequnet.analysis import listening
    written = listening.load_items(tmp_path / "listening_items")
    by_model = listening.load_key(written).models[written.items[0].id]
    for clip, model in by_model.items():
        audio, sr = soundfile.read(tmp_path / "listening_items" / clip)
        expected = _decoded(ids[model][0])
        assert sr == SR and len(audio) == len(expected) and np.abs(audio - expected).max() < 1e-3


def _decoded(ids):
    from sequnet.data.audio import mu_law_decode
    return mu_law_decode(torch.from_numpy(ids.astype(np.int64))).numpy()


def test_the_speed_table_names_the_products_and_the_joint_batch(finished, tmp_path):
    """A CPU set ran the torch products (named nowhere); a GPU set names the kernels the batch rule chose. The
    long set's 2 rows were generated in one batch of 4 with the items', and the table says so."""
    from sequnet.analysis import piano

    ids, meta = piano_run.load_generation(finished, "long")
    assert {s["kernel"] for s in meta["speed"].values()} == {"torch"}
    table = piano.speed_markdown(finished)
    assert "kernels" not in table and "| Seq-U-Net | 4 |" in table
    assert ("The 2 continuations of this set were generated in one batch of 4 with the listening items' 2 primes"
            in table)
    meta["speed"]["wavenet"] |= {"kernel": "splitk"}
    piano_data.write_set(tmp_path, "long", ids, meta)
    assert "| cpu, splitk kernels |" in piano.speed_markdown(tmp_path)
    meta["speed"]["wavenet"] |= {"kernel": "chain", "kernel_trial": {"splitk": 1522.4, "chain": 5012.9}}
    piano_data.write_set(tmp_path, "long", ids, meta)
    assert "| cpu, chain kernels (timed first: chain 5,013, splitk 1,522 steps/s) |" in piano.speed_markdown(tmp_path)


def test_generation_writes_the_shorter_set_first_and_stops_at_a_deadline(finished, tmp_path):
    """The items (0.1 s) are written after the second 0.05 s chunk, the long set (0.3 s) at the end; with the
    deadline already past, nothing starts beyond the first chunk and nothing is written, unless the call is the
    session's last (``cut``)."""
    import time
    from sequnet.analysis import piano
    from sequnet.experiment.piano_data import GenerationSet, generate_sets

    run = piano_run.load_run(finished)
    models = piano_run.trained_models(finished, "cpu")
    task = piano_run.make_tasks(run, piano_run.run_configs(run, "cpu"), finished)["sequnet"]
    sets = [("long", GenerationSet(2, 0.5, 0.3), 0), ("items", GenerationSet(1, 0.5, 0.1), 1)]
    order = []
    assert generate_sets(models, task, sets, 0.95, 0, lambda name, ids, meta: order.append((name, ids)),
                         chunk_s=0.05) == ["items", "long"]
    assert [name for name, _ in order] == ["items", "long"]
    assert order[0][1]["sequnet"].shape == (1, round(0.6 * SR)) and order[1][1]["wavenet"].shape == (2, round(0.8 * SR))
    # WaveNet's kernel candidates are timed first where there is a choice; on a CPU there is none (torch products)
    metas = {}
    generate_sets(models, task, sets, 0.95, 0, lambda name, ids, meta: metas.update({name: meta}), chunk_s=0.05,
                  kernels={"wavenet": ("splitk", "chain")})
    speed = metas["long"]["speed"]
    assert speed["wavenet"]["kernel"] == "torch" and speed["wavenet"]["kernel_trial"] == {}
    assert "kernel_trial" not in speed["sequnet"]
    assert generate_sets(models, task, sets, 0.95, 0, lambda *a: pytest.fail("written"), time.monotonic(),
                         chunk_s=0.05) == []
    # the session's last call keeps what it got: one chunk of each set, said to be cut
    cut = {}
    assert sorted(generate_sets(models, task, sets, 0.95, 0, lambda name, ids, meta: cut.update({name: (ids, meta)}),
                                time.monotonic(), chunk_s=0.05, cut=True)) == ["items", "long"]
    for name, asked in (("items", 0.1), ("long", 0.3)):
        ids, meta = cut[name]
        assert meta["cut_from_s"] == asked
        assert ids["real"].shape[1] == ids["wavenet"].shape[1] == round(0.55 * SR)
    piano_data.write_set(tmp_path, "long", *cut["long"])
    assert "**This set was cut at 0.05 s of the 0.3 s asked:**" in piano.speed_markdown(tmp_path)
    with pytest.raises(ValueError, match="equally long"):
        generate_sets(models, task, [sets[0], ("items", GenerationSet(1, 0.25, 0.1), 1)], 0.95, 0, order.append)


def test_the_generation_widget_generates_what_is_asked(finished):
    from sequnet.analysis import piano_widget

    widget = piano_widget.from_run(finished, "cpu")
    assert isinstance(widget, piano_widget.GenerationWidget)
    widget.prime.value, widget.model.value, widget.temperature.value, widget.seconds.value = 1, "wavenet", 0.8, 0.05
    widget.button.click()
    prime_len = widget.primes.shape[1]
    assert widget.last.shape == (prime_len + round(0.05 * SR),) and np.abs(widget.last).max() <= 1
    assert widget.status.value.startswith("WaveNet, temperature 0.80")


def test_the_widget_says_what_is_missing_without_checkpoints(tmp_path):
    from sequnet.analysis import piano_widget

    assert "checkpoints are not part of the book" in piano_widget.from_run(tmp_path)


def test_records_carry_the_training_extent_and_labels_say_it(tmp_path):
    from sequnet.analysis.reports import scale_label
    from sequnet.experiment.records import extent_text, short_of_paper, training_extent

    fields = dict(experiment="piano_audio", model="wavenet", scale="paper", metric="bits_per_sample",
                  metrics={"train": 2.0, "valid": None, "test": 2.5}, params=1, receptive_field=1,
                  time_per_step_s=0.27, peak_memory_mib=1.0, device="NVIDIA H200", wall_time_s=1.0, deviations={})
    short = ResultRecord(**fields, extent=training_extent("piano_audio", 2_460, train_audio_hours=10.2))
    assert short_of_paper(short) and extent_text(short) == ("2,460 steps, 1.0% of the paper's 246,000; 10.2 h of "
                                                            "training audio")
    assert "not a reproduction" in scale_label(short) and "2,460 steps" in scale_label(short)
    full = ResultRecord(**fields, extent=training_extent("piano_audio", 246_000))
    assert not short_of_paper(full) and scale_label(full).startswith("paper scale")
    with pytest.raises(ValueError, match="iterations only for piano_audio"):
        training_extent("jsb", 10)
    bad = dataclasses.replace(short, extent=[1]).save(tmp_path / "r.json")
    with pytest.raises(RecordError, match="field 'extent' must be a JSON object"):
        ResultRecord.load(bad)


def test_the_banner_of_a_paper_scale_chapter_that_trained_less_than_the_paper(finished, tmp_path):
    import nbformat

    from sequnet.publish import notebook_view

    record = ResultRecord.load(finished / "records" / "piano_audio_wavenet.json")
    (tmp_path / "records").mkdir()
    dataclasses.replace(record, scale="paper").save(tmp_path / "records" / "piano_audio_wavenet.json")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Raw piano audio")])
    nb.metadata["papermill"] = {"parameters": {"scale": "paper", "out_dir": "x", "run_dir": "y"}}
    banner = notebook_view.with_banner(nb, tmp_path).cells[1].source
    assert "trained for less than the paper" in banner and "WaveNet (6 steps, 0.0024% of the paper's" in banner
    assert "paper's settings" not in banner
    assert "paper's settings" in notebook_view.with_banner(nb, tmp_path / "none").cells[1].source


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_both_models_take_the_fast_path_and_the_kept_weights_are_the_trained_ones(audio_dir, tmp_path):
    """Epochs of 5 steps: the CUDA graph is captured at each epoch's fourth step, so the weights at WaveNet's 10
    steps are read after replays. Seq-U-Net also trains 10 steps: what is kept must be its final checkpoint."""
    from sequnet.experiment.checkpoints import load_checkpoint

    run = smoke(audio_dir, report_every=(("wavenet", 5), ("sequnet", 5)))
    assert piano_run.run_piano(run, tmp_path, device="cuda", log=None)
    for arch in ("wavenet", "sequnet"):
        record = ResultRecord.load(tmp_path / "records" / f"piano_audio_{arch}.json")
        assert record.config["bf16"] and record.config["cuda_graphs"] and record.config["fast_kernels"]
        assert record.extent["steps"] == 10 and record.deviations["bf16"] is True
    kept = torch.load(tmp_path / "checkpoints" / "piano_audio_sequnet_at_10.pt", weights_only=True)["model"]
    final = load_checkpoint(tmp_path / "checkpoints" / "piano_audio_sequnet.pt")["model"]
    assert all(torch.equal(kept[k].cpu(), final[k].cpu()) for k in final)
    _, meta = piano_run.load_generation(tmp_path, "long")
    assert all(s["cuda_graphs"] for s in meta["speed"].values())


def test_the_decoded_audio_is_cached_until_the_folder_changes(audio_dir, finished, monkeypatch, tmp_path):
    run = smoke(audio_dir)
    fresh = piano_data.load_audio_corpus(audio_dir)
    monkeypatch.setattr(piano_data, "load_audio_corpus", lambda folder: pytest.fail("decoded again"))
    cached = piano_data.load_corpus(run, finished)
    assert all(torch.equal(cached.test[k], fresh.test[k]) for k in fresh.test) and set(cached.train) == set(fresh.train)
    changed = tmp_path / "audio"
    import shutil
    shutil.copytree(audio_dir, changed)
    (changed / "test" / "test1.flac").unlink()
    with pytest.raises(pytest.fail.Exception, match="decoded again"):
        piano_data.load_corpus(dataclasses.replace(run, audio_dir=str(changed)), finished)
