"""The training-step benchmark runs end to end on the CPU (shapes and output only; no timing assertions)."""
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "training.py"


def benchmark_module(name: str):
    """A script of benchmarks/ imported as a module (its own imports find the scripts beside it)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_training_benchmark_writes_both_models_of_a_pair(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--tasks", "jsb", "--steps", "1",
                    "--warmup", "1", "--out", str(out)], check=True, capture_output=True, text=True, timeout=300)
    bench = json.loads(out.read_text())
    rows = {(r["task"], r["arch"]): r for r in bench["rows"]}
    assert set(rows) == {("jsb", "tcn"), ("jsb", "sequnet")}
    assert rows["jsb", "sequnet"]["time_ratio"] > 0 and rows["jsb", "tcn"]["params"] > 0
    assert bench["meta"]["quick"] is True
    from sequnet.experiment.records import git_commit
    assert bench["meta"]["git_commit"] == git_commit()        # SEQUNET_GIT_COMMIT on a copy without .git


def test_a_benchmark_file_names_the_commit_it_measured_and_its_tables_say_it(tmp_path, monkeypatch):
    from sequnet.analysis import benchmarks
    monkeypatch.setenv("SEQUNET_GIT_COMMIT", "1a2b3c4")        # a copy of the tree without .git (a GPU machine)
    benchmarks.write_bench(tmp_path / "generation-x.json", {"meta": {"device": "GPU", "torch": "2",
                                                                     "date": "2026-12-05"}, "rows": []})
    written = json.loads((tmp_path / "generation-x.json").read_text())
    assert written["meta"]["git_commit"] == "1a2b3c4" and list(tmp_path.iterdir()) == [tmp_path / "generation-x.json"]
    assert benchmarks.generation_markdown(tmp_path / "generation-x.json", written).startswith(
        "**generation-x.json**: GPU, torch 2, 2026-12-05, at 1a2b3c4\n")
    benchmarks.write_bench(tmp_path / "kept.json", {"meta": {"git_commit": "given"}, "rows": []})
    assert json.loads((tmp_path / "kept.json").read_text())["meta"]["git_commit"] == "given"


def test_training_benchmark_profile_names_the_operators(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--tasks", "jsb", "--profile", "1",
                    "--out", str(out)], check=True, capture_output=True, text=True, timeout=300)
    report = out.with_suffix(".profile.txt").read_text()
    assert "## jsb / tcn" in report and "## jsb / sequnet" in report and "aten::" in report


def test_table1_script_trains_then_reports_through_the_notebook(tmp_path, data_mirror):
    """A CPU dry run of benchmarks/table1_paper.sh at smoke scale: both JSB runs train resumably, the music
    notebook then reports them from their checkpoints (no retraining) with the same test metric."""
    import os

    env = dict(os.environ, TASKS="jsb", SCALE="smoke", DEVICE="cpu", MPS="0", PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               SEQUNET_DATA_MIRROR=str(data_mirror), VARIANTS="jsb sequnet --lr 0.01; ")
    out, work = tmp_path / "out", tmp_path / "work"
    script = str(REPO / "benchmarks" / "table1_paper.sh")
    checkpoints = {}
    for mode in ("train", "report"):
        done = subprocess.run(["bash", script, mode, str(out), str(work)], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        checkpoints[mode] = {p.name: p.stat().st_mtime_ns for p in (work / "checkpoints").glob("*.pt")}
    assert len(checkpoints["report"]) == 2 and checkpoints["report"] == checkpoints["train"], \
        "the report resumes the finished runs: it trains no epoch, so it writes no checkpoint"
    assert (out / "music_jsb.ipynb").is_file() and not (out / "music_jsb.failed.ipynb").exists()
    for arch in ("tcn", "sequnet"):
        trained = json.loads((work / "records" / f"jsb_{arch}.json").read_text())
        reported = json.loads((out / "music_jsb" / "records" / f"jsb_{arch}.json").read_text())
        assert reported["metrics"]["test"] == trained["metrics"]["test"]
        assert reported["history"] == trained["history"], "the notebook must resume, not retrain"
    # the variant trained beside them, into its own folder, its record naming the change
    variant = json.loads((work / "variant-1" / "records" / "jsb_sequnet.json").read_text())
    assert "preset changed: lr=0.01" in variant["notes"] and variant["config"]["lr"] == 0.01
    assert "side by side with other runs (3 training processes on one CPU" in variant["notes"]     # contended
    assert (out / "jsb_sequnet.variant-1.log").is_file() and not (work / "variant-2").exists()


def test_table1_script_refuses_an_unknown_mode(tmp_path):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "table1_paper.sh"), "rerun", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr


def test_table1_script_refuses_a_variant_without_its_model_before_starting_anything(tmp_path):
    env = dict(os.environ, TASKS="jsb", SCALE="smoke", DEVICE="cpu", MPS="0", VARIANTS="jsb sequnet --lr 0.01; jsb")
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "table1_paper.sh"), "train", str(tmp_path / "o"),
                           str(tmp_path / "w")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "'jsb' names no TASK ARCH" in done.stderr
    assert not list((tmp_path / "o").glob("*.log")), "nothing may start when a variant is malformed"


def test_seeds_script_trains_only_the_missing_seeds_side_by_side_and_is_idempotent(tmp_path, data_mirror):
    """A CPU dry run of benchmarks/table1_seeds.sh at smoke scale: seed 1111 exists (a record under HAVE), so
    seeds 2 and 3 train, together, each record naming its seed and the contention; a second call would train
    nothing."""
    from sequnet.experiment.records import ResultRecord
    from sequnet.experiment.scales import resolve
    from sequnet.experiment.seeds import todo
    from sequnet.experiment.training import train

    have, out, work = tmp_path / "have", tmp_path / "out", tmp_path / "work"
    train(resolve("jsb", "tcn", "smoke", device="cpu"), out_dir=have)
    env = dict(os.environ, CELLS="jsb:tcn", SEEDS="1111 2 3", HAVE=str(have), SCALE="smoke", DEVICE="cpu", MPS="0",
               PYTHON=sys.executable, SEQUNET_DATA_MIRROR=str(data_mirror),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    script = ["bash", str(REPO / "benchmarks" / "table1_seeds.sh"), "train", str(out), str(work)]
    done = subprocess.run(script, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "training 2 runs side by side: jsb tcn 2;jsb tcn 3;" in done.stdout
    records = {p.name: ResultRecord.load(p) for p in (work / "records").glob("*.json")}
    assert set(records) == {"jsb_tcn_seed2.json", "jsb_tcn_seed3.json"}
    assert [records[f"jsb_tcn_seed{s}.json"].seed for s in (2, 3)] == [2, 3]
    assert all("side by side with other runs (2 training processes on one CPU" in r.notes for r in records.values())
    assert sorted(p.name for p in out.iterdir()) == ["seeds.tar.gz", "status.txt"]
    assert "jsb/tcn seed 1111: ok" in (out / "status.txt").read_text()
    # what a second call would start: nothing
    assert todo([("jsb", "tcn", None)], (1111, 2, 3), [have, work / "records"], "smoke") == []


def test_a_diverged_seed_is_no_failure_of_the_seeds_call_and_the_others_still_ask_for_another(tmp_path, data_mirror):
    """The trainer exits 1 for a diverged run. With one seed diverged (here by an absurd learning rate) and one
    stopped early (exit 3, as a time limit leaves it), the call says 3, call again, not 1, a failure (2026-12-03:
    the word Seq-U-Net's seed 2 diverged in the first of three calls, which exited 1); a real failure is still 1."""
    out, work = tmp_path / "out", tmp_path / "work"
    python = tmp_path / "python"
    # the interpreter the script is given: seed 2 trains with lr 1e9 and diverges, seed 3 "stops early"
    python.write_text(f"""#!/usr/bin/env bash
case " $* " in
  *" train jsb tcn --seed 2 "*) exec {sys.executable} "$@" --lr 1e9 ;;
  *" train jsb tcn --seed 3 "*) exit ${{SEED3_EXIT:-3}} ;;
esac
exec {sys.executable} "$@"
""")
    python.chmod(0o755)
    env = dict(os.environ, CELLS="jsb:tcn", SEEDS="2 3", HAVE="", SCALE="smoke", DEVICE="cpu", MPS="0",
               PYTHON=str(python), SEQUNET_DATA_MIRROR=str(data_mirror),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    script = ["bash", str(REPO / "benchmarks" / "table1_seeds.sh"), "train", str(out), str(work)]
    done = subprocess.run(script, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 3, done.stdout + done.stderr
    assert json.loads((work / "records" / "jsb_tcn_seed2.json").read_text())["status"] == "diverged"
    failed = subprocess.run(script, env=dict(env, SEED3_EXIT="2"), cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert failed.returncode == 1, failed.stdout + failed.stderr


def test_seeds_script_reports_a_seeds_chapter_from_its_checkpoints(tmp_path, data_mirror):
    """`table1_seeds.sh report` executes the chapter of a task whose two models finished the seed, on their
    checkpoints (no retraining), names the seed in its banner and packs it; with no such task it says so (3)."""
    import tarfile

    import nbformat

    from sequnet.publish import notebook_view

    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, CELLS="jsb:tcn:2 jsb:sequnet:2", SEEDS="2", HAVE="", SCALE="smoke", DEVICE="cpu", MPS="0",
               PYTHON=sys.executable, SEQUNET_DATA_MIRROR=str(data_mirror),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    script = str(REPO / "benchmarks" / "table1_seeds.sh")
    early = subprocess.run(["bash", script, "report", str(out), str(work)], env=dict(env, REPORT_SEED="2"),
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert early.returncode == 3 and "no task of these cells has both models of seed 2" in early.stderr
    # with REPORT_SEED, the call that finishes the seeds reports them too (the session has no room for another)
    done = subprocess.run(["bash", script, "train", str(out), str(work)], env=dict(env, REPORT_SEED="2"), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "reporting seed 2 of: jsb" in done.stdout and not (out / "chapters").exists()
    assert sorted(p.name for p in out.iterdir()) == ["chapters.tar.gz", "seeds.tar.gz", "status.txt"]
    trained = {p.name: p.stat().st_mtime_ns for p in (work / "checkpoints").glob("*.pt")}
    done = subprocess.run(["bash", script, "report", str(out), str(work)], env=dict(env, REPORT_SEED="2"), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (work / "checkpoints").glob("*.pt")} == trained, "no retraining"
    with tarfile.open(out / "chapters.tar.gz") as tar:
        tar.extractall(tmp_path / "build", filter="data")
    build = tmp_path / "build"
    for arch in ("tcn", "sequnet"):
        reported = json.loads((build / "music_jsb" / "records" / f"jsb_{arch}_seed2.json").read_text())
        assert reported["seed"] == 2
        assert reported["metrics"] == json.loads((work / "records" / f"jsb_{arch}_seed2.json").read_text())["metrics"]
    nb = nbformat.read(build / "music_jsb.ipynb", as_version=4)
    assert nb.metadata["papermill"]["parameters"]["seed"] == 2
    assert any("music_samples" in c.source for c in nb.cells)
    nb.metadata["papermill"]["parameters"]["scale"] = "paper"     # the banner the GPU run's chapter gets
    banner = notebook_view.scale_banner(nb)
    assert "paper's settings (Tables 2 and 3), seed 2." in banner and "changed settings" not in banner


def test_book_gpu_script_packs_the_benchmark_and_the_gpu_chapters(tmp_path, data_mirror):
    """A CPU dry run of benchmarks/book_gpu.sh at smoke scale: the generation benchmark's JSON, and the complexity,
    generation and models chapters packed in the layout of `sequnet run`, for the promotion on a CPU; the committed
    benchmark JSON stays as it was."""
    import tarfile

    out = tmp_path / "out"
    committed = (REPO / "results" / "bench" / "generation-h200.json").read_bytes()
    env = dict(os.environ, SCALE="smoke", DEVICE="cpu", SEQUNET_DATA_MIRROR=str(data_mirror),
               GEN_ARGS="--tiny --modes eager --steps 16 --batches 1 --dtypes float32 --repeats 1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "book_gpu.sh"), str(out)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr + (out / "book_gpu.log").read_text()
    bench = json.loads((out / "generation-h200.json").read_text())
    assert {row["model"] for row in bench["rows"]} == {"sequnet", "wavenet"}
    with tarfile.open(out / "chapters.tar") as tar:
        names = tar.getnames()
    assert {"complexity.ipynb", "generation.ipynb", "models.ipynb"} <= set(names)  # (generation writes no files)
    assert any(n.startswith("complexity/") for n in names)
    assert (REPO / "results" / "bench" / "generation-h200.json").read_bytes() == committed


def test_hpo_script_runs_a_labelled_search_and_packs_it(tmp_path, data_mirror):
    """A CPU dry run of benchmarks/table1_hpo.sh: one search of two one-epoch trials at smoke scale."""
    import tarfile

    env = dict(os.environ, CELLS="jsb:tcn", EPOCHS="1", TRIALS="2", SCALE="smoke", DEVICE="cpu", MPS="0",
               PYTHON=sys.executable, SEQUNET_DATA_MIRROR=str(data_mirror),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out, work = tmp_path / "out", tmp_path / "work"
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "table1_hpo.sh"), str(out), str(work)], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((work / "hpo_jsb_tcn_smoke.json").read_text())
    assert summary["complete"] and len(summary["trials"]) == 2 and summary["deviations"]["epochs"] == 1
    assert "hpo_jsb_tcn.log: best of 2 trials" in (out / "status.txt").read_text()
    with tarfile.open(out / "hpo.tar.gz") as tar:
        names = tar.getnames()
    assert "hpo_jsb_tcn_smoke.json" in names and "hpo_jsb_tcn_smoke/trial-002/records/jsb_tcn.json" in names
    assert not any(n.endswith("trials.pkl") for n in names)
    # the search continues on another machine from hpo-state.tar.gz unpacked into a new WORK: one more trial
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with tarfile.open(out / "hpo-state.tar.gz") as tar:
        tar.extractall(elsewhere, filter="data")
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "table1_hpo.sh"), str(out), str(elsewhere)],
                          env=env | {"TRIALS": "3"}, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    resumed = json.loads((elsewhere / "hpo_jsb_tcn_smoke.json").read_text())
    assert len(resumed["trials"]) == 3 and resumed["trials"][:2] == summary["trials"]
    log = (elsewhere / "logs" / "hpo_jsb_tcn.log").read_text()       # both calls' lines: no trial ran twice
    assert [log.count(f"trial {i} lr=") for i in (1, 2, 3)] == [1, 1, 1], log


def test_retrain_script_trains_the_best_setting_of_a_search_with_each_seed(tmp_path, data_mirror):
    """A CPU dry run of benchmarks/table1_retrain.sh from a search summary: two seeds, labelled as changed runs."""
    import tarfile

    searches = tmp_path / "hpo"
    searches.mkdir()
    (searches / "hpo_jsb_tcn_smoke.json").write_text(json.dumps({"lr": 0.003, "clip": 0.5, "trials": []}))
    env = dict(os.environ, CELLS="jsb:tcn", SEEDS="1111 2", SEARCHES=str(searches), SCALE="smoke", DEVICE="cpu",
               MPS="0", PYTHON=sys.executable, SEQUNET_DATA_MIRROR=str(data_mirror),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    out, work = tmp_path / "out", tmp_path / "work"
    script = ["bash", str(REPO / "benchmarks" / "table1_retrain.sh"), str(out), str(work)]
    done = subprocess.run(script, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for name, seed in (("jsb_tcn", 1111), ("jsb_tcn_seed2", 2)):
        record = json.loads((work / "jsb_tcn-best" / "records" / f"{name}.json").read_text())
        assert record["deviations"] == {"lr": 0.003, "clip": 0.5} and record["seed"] == seed
        assert record["status"] == "ok" and "search hpo_jsb_tcn_smoke.json" in record["notes"]
    with tarfile.open(out / "retrain.tar.gz") as tar:
        names = tar.getnames()
    assert {"./jsb_tcn-best/records/jsb_tcn.json", "logs/jsb_tcn_seed2.log"} <= set(names)
    assert not any("checkpoints" in n or n.endswith(".lock") for n in names)
    # called again, nothing is left to train
    done = subprocess.run(script, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "every run of these cells has a finished record" in done.stdout
    # a cell without a search: refused before anything trains, naming the summary it looked for
    done = subprocess.run(script, env=env | {"CELLS": "muse:sequnet"}, cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 2 and "hpo_muse_sequnet_smoke.json: no search summary" in done.stderr
    assert not (work / "muse_sequnet-best").exists()


def test_seeds_script_refuses_an_unknown_session(tmp_path):
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "table1_seeds.sh"), "train", str(tmp_path)],
                          env=dict(os.environ, SESSION="4"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "SESSION=4" in done.stderr and not list(tmp_path.iterdir())


def test_training_benchmark_times_the_one_hot_input_path(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--tasks", "piano_audio",
                    "--piano-batches", "1", "--steps", "1", "--warmup", "1", "--one-hot-input", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    bench = json.loads(out.read_text())
    assert bench["meta"]["one_hot_input"] is True
    assert {r["arch"] for r in bench["rows"]} == {"wavenet", "sequnet"}


def test_training_benchmark_records_the_speed_up_switches(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--tasks", "piano_audio",
                    "--piano-batches", "1", "--steps", "1", "--warmup", "1", "--channels-last", "both",
                    "--fused-gate", "--out", str(out)], check=True, capture_output=True, text=True, timeout=300)
    bench = json.loads(out.read_text())
    assert (bench["meta"]["channels_last"], bench["meta"]["fused_gate"]) == ("both", "on")
    rows = [(r["arch"], r["channels_last"], r["fused_gate"]) for r in bench["rows"]]
    # both models get the fused gate (a fair ratio): each variant measures the pair with the same switches
    assert rows == [("wavenet", False, True), ("sequnet", False, True), ("wavenet", True, True),
                    ("sequnet", True, True)]
    assert all(r["time_ratio"] > 0 for r in bench["rows"] if r["arch"] == "sequnet")


def test_training_benchmark_measures_the_sequnet_beside_each_wavenet_crop(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--tasks", "piano_audio",
                    "--piano-batches", "1", "--steps", "1", "--warmup", "1", "--crop-skips", "both", "--out",
                    str(out)], check=True, capture_output=True, text=True, timeout=300)
    bench = json.loads(out.read_text())
    assert bench["meta"]["crop_skips"] == "both"
    rows = [(r["arch"], r["crop_skips"], r.get("baseline_crop_skips")) for r in bench["rows"]]
    # the crop applies to WaveNet alone; the Seq-U-Net is measured again beside each WaveNet, for its own ratio
    assert rows == [("wavenet", False, None), ("sequnet", False, False), ("wavenet", True, None),
                    ("sequnet", False, True)]
    assert all(r["time_ratio"] > 0 for r in bench["rows"] if r["arch"] == "sequnet")


def test_piano_fast_script_writes_every_variant(tmp_path):
    env = dict(os.environ, DEVICE="cpu", OPTIONS="--quick --steps 1 --warmup 1 --piano-batches 1",
               PYTHON=sys.executable, PYTHONPATH=str(REPO))
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "piano_fast.sh"), str(tmp_path)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["piano-fast-bf16.json", "piano-fast-fp32.json",
                                                          "piano-fast.log"]
    variants = set()
    for path in tmp_path.glob("*.json"):
        for r in json.loads(path.read_text())["rows"]:
            variants.add((r["arch"], r["bf16"], r["channels_last"], r["fused_gate"]))
    every = {(bf16, cl, fg) for bf16 in (False, True) for cl in (False, True) for fg in (False, True)}
    assert {v[1:] for v in variants if v[0] == "sequnet"} == {v[1:] for v in variants if v[0] == "wavenet"} == every


def test_breakdown_takes_every_pair_apart(tmp_path):
    out = tmp_path / "breakdown.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "breakdown.py"), "--device", "cpu", "--quick",
                    "--steps", "1", "--warmup", "1", "--out", str(out)], check=True, capture_output=True, text=True,
                   timeout=300)
    rows = json.loads(out.read_text())["rows"]
    assert [(r["task"], r["arch"]) for r in rows] == [(t, a) for t in ("char_ptb", "word_ptb", "jsb", "nottingham",
                                                                        "muse") for a in ("tcn", "sequnet")]
    for r in rows:
        # Adam's two moments are twice the parameters; the forward pass saves activations; a step has FLOPs
        assert r["adam_mib"] == pytest.approx(2 * r["params_mib"]) and r["grads_mib"] == r["params_mib"]
        assert r["saved_activations_mib"] > 0 and r["flops_per_step"] > 0 and r["eager_time_s"] > 0
    assert all("ratio_flops_per_step" in r for r in rows if r["arch"] == "sequnet")
    meta = json.loads(out.read_text())["meta"]
    assert meta["complete"] is True and meta["measured"] == meta["planned"] == 5


def test_breakdown_table_tells_the_sweeps_windows_apart_and_says_when_a_run_was_cut(tmp_path):
    from sequnet.analysis import benchmarks

    def row(arch, batch, window, flops, peak, graph_s):
        return {"task": "char_ptb", "arch": arch, "batch": batch, "window_multiple": window, "params_mib": 1.0,
                "grads_mib": 1.0, "adam_mib": 2.0, "saved_activations_mib": peak / 2, "remainder_mib": 10.0,
                "eager_peak_mib": peak, "gpu_operations_per_step": 300, "flops_per_step": flops,
                "eager_time_s": 2 * graph_s, "graph_time_s": graph_s, "tflops_per_s": 1.0}
    rows = [row("tcn", 16, 1, 1e11, 400.0, 0.005), row("sequnet", 16, 1, 4e10, 380.0, 0.004),
            row("tcn", 16, 4, 4e11, 1000.0, 0.010), row("sequnet", 16, 4, 2e11, 700.0, 0.009)]
    benchmark_module("breakdown").add_ratios(rows)
    meta = {"device": "GPU", "torch": "2", "date": "2026-12-04", "complete": False, "measured": 2, "planned": 5}
    (tmp_path / "breakdown-x.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    table = benchmarks.breakdown_markdown(tmp_path)
    assert "after 2 of 5 pairs" in table
    assert "| char_ptb | sequnet | 16 (×4) |" in table and "| char_ptb | sequnet | 16 |" in table
    # the ratios: FLOPs, saved activations, peak and graphed time of the Seq-U-Net over the TCN, window by window
    assert "| char_ptb | 16 | 0.40 | 0.95 | 0.95 | 0.80 |" in table
    assert "| char_ptb | 16 (×4) | 0.50 | 0.70 | 0.70 | 0.90 |" in table


def test_generation_table_names_the_kernel_when_a_file_compares_them(tmp_path):
    from sequnet.analysis import benchmarks
    meta = {"device": "GPU", "torch": "2", "date": "2026-12-04"}
    base = {"model": "wavenet", "batch": 28, "dtype": "float32", "mode": "graphs", "step_us": 100.0,
            "samples_per_s": 280000.0}
    kernels = {"meta": meta, "rows": [base | {"kernel": "splitk", "ops_per_step": 220.0},
                                      base | {"kernel": "chain", "ops_per_step": 13.0}]}
    table = benchmarks.generation_markdown(tmp_path / "g.json", kernels)
    assert "| wavenet | 28 | float32 | graphs | splitk | 220 | 280,000 |" in table
    assert "| wavenet | 28 | float32 | graphs | chain | 13 | 280,000 |" in table
    launched = benchmarks.generation_markdown(tmp_path / "g.json", {"meta": meta, "rows": [
        base | {"kernel": "splitk", "ops_per_step": 220.0, "pdl": True}]})
    assert "| wavenet | 28 | float32 | graphs | splitk+pdl | 220 | 280,000 |" in launched
    chunked = benchmarks.generation_markdown(tmp_path / "g.json", {"meta": meta, "rows": [
        base | {"kernel": "splitk", "ops_per_step": 220.0, "chunk": 16},
        base | {"kernel": "splitk", "ops_per_step": 220.0, "chunk": 64}]})
    assert "| splitk | 220 |" in chunked and "| splitk, 64-step graphs | 220 |" in chunked
    tiled = benchmarks.generation_markdown(tmp_path / "g.json", {"meta": meta, "rows": [
        base | {"kernel": "splitk", "ops_per_step": 220.0, "splitk_tile": "64x64"},
        base | {"kernel": "splitk", "ops_per_step": 220.0, "splitk_tile": "32x64"},
        base | {"kernel": "splitk", "ops_per_step": 220.0, "splitk_tile": "rule"},
        base | {"kernel": "splitk", "ops_per_step": 220.0}]})     # from before the tile was recorded: 64 x 64
    assert "| splitk, 64x64 tiles | 220 |" in tiled and "| splitk, 32x64 tiles | 220 |" in tiled
    assert "| splitk | 220 |" in tiled
    assert "| splitk, tiles by shape | 220 |" in tiled
    least = benchmarks.generation_markdown(tmp_path / "g.json", {"meta": meta, "rows": [
        base | {"kernel": "rowdot", "ops_per_step": 108.0, "rowdot_programs": 64},
        base | {"kernel": "rowdot", "ops_per_step": 108.0, "rowdot_programs": 128}]})
    assert "| rowdot | 108 |" in least and "| rowdot, 128+ programs | 108 |" in least
    summed = benchmarks.generation_markdown(tmp_path / "g.json", {"meta": meta, "rows": [
        base | {"kernel": "splitk", "ops_per_step": 220.0, "splits_unrolled": True, "chunk_aligned": True},
        base | {"kernel": "splitk", "ops_per_step": 219.0, "splits_unrolled": False, "chunk_aligned": True},
        base | {"kernel": "splitk", "ops_per_step": 218.0, "splits_unrolled": True, "chunk_aligned": False},
        base | {"kernel": "rowdot", "ops_per_step": 108.0, "splits_unrolled": False, "chunk_aligned": True}]})
    assert "| splitk | 220 |" in summed and "| splitk, splits in a loop | 219 |" in summed
    assert "| splitk, unaligned | 218 |" in summed and "| rowdot | 108 |" in summed      # rowdot sums no splits
    older = benchmarks.generation_markdown(tmp_path / "g.json", {"meta": meta, "rows": [base]})
    assert "kernel" not in older and "| wavenet | 28 | float32 | graphs | 280,000 |" in older


def test_generation_benchmark_times_split_k_tiles_for_split_k_states_only(tmp_path):
    """--splitk-tiles: a malformed tile is refused before anything runs; on the CPU (no split-K) each state is
    timed once whatever the tiles, and the module's tile comes back after."""
    from sequnet.core.generation import splitk

    gen = benchmark_module("generation")
    with pytest.raises(SystemExit):
        gen.main(["--splitk-tiles", "48x64", "--device", "cpu"])
    with pytest.raises(SystemExit):
        gen.main(["--splitk-tiles", "16x64", "--device", "cpu"])      # half a chunk is below tl.dot's 16 rows
    with pytest.raises(SystemExit):
        gen.main(["--rowdot-programs", "0", "--device", "cpu"])
    assert gen.splitk_tile("128x32") == (128, 32) and gen.splitk_tile(None) == splitk.TILE
    assert gen.splitk_tile("rule") is None and gen.tile_name(None) == "rule" and gen.tile_name((32, 64)) == "32x64"
    before = gen.splitk_tile(None)
    out = tmp_path / "g.json"
    assert gen.main(["--device", "cpu", "--quick", "--tiny", "--batches", "1", "--dtypes", "float32",
                     "--accuracy-steps", "0", "--steps", "4", "--splitk-tiles", "64x64", "32x128",
                     "--rowdot-programs", "64", "128", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["splitk_tile"], r["rowdot_programs"]) for r in rows] == [
        ("sequnet", None, None), ("wavenet", None, None)]
    assert json.loads(out.read_text())["meta"]["config"]["splitk_tiles"] == ["64x64", "32x128"]
    assert json.loads(out.read_text())["meta"]["config"]["rowdot_programs"] == [64, 128]
    assert gen.splitk_tile(None) == before


def test_kernel_trace_summary_counts_overlaps_once_and_gaps_as_idle():
    """kernel_trace.summarise: two kernels that overlap (PDL) count once in the busy time, a gap counts as idle
    in the span, and kernels of one name are grouped by grid, longest first."""
    kt = benchmark_module("kernel_trace")
    ops = [{"name": "a", "grid": [64, 1, 1], "ts": 0.0, "dur": 2.0},
           {"name": "b", "grid": [8, 1, 1], "ts": 1.5, "dur": 1.0},      # overlaps a by 0.5
           {"name": "a", "grid": [64, 1, 1], "ts": 4.0, "dur": 2.0},     # 1.5 idle before it
           {"name": "a", "grid": [32, 1, 1], "ts": 6.0, "dur": 1.0},
           {"name": "c", "grid": [1, 1, 1], "ts": 6.2, "dur": 0.3}]      # inside the one before
    s = kt.summarise(ops, steps=2)
    assert kt.busy_us(ops) == pytest.approx(5.5) and s["busy_us_per_step"] == pytest.approx(2.75)
    assert s["span_us_per_step"] == pytest.approx(3.5) and s["kernel_us_per_step"] == pytest.approx(3.15)
    assert s["ops_per_step"] == 2.5
    assert [(k["name"], k["grid"], k["per_step"], k["mean_us"]) for k in s["by_kernel"]] == [
        ("a", [64, 1, 1], 1.0, 2.0), ("b", [8, 1, 1], 0.5, 1.0), ("a", [32, 1, 1], 0.5, 1.0),
        ("c", [1, 1, 1], 0.5, pytest.approx(0.3))]
    assert "busy 2.75, span 3.50 (idle 0.75, overlap 0.40)" in kt.summary_lines(s)[0]
    assert kt.summarise([], 4)["by_kernel"] == []
    with pytest.raises(ValueError, match="at least one step"):
        kt.summarise(ops, 0)


def test_generation_benchmark_profiles_whole_multi_step_graphs_only(tmp_path):
    """--profile-steps must be a multiple of every chunk (the profiled steps replay whole graphs); on a CPU the
    rows carry no profile and the setting is recorded."""
    gen = benchmark_module("generation")
    for bad in (["--profile-steps", "24"], ["--profile-steps", "-16"], ["--profile-steps", "64", "--chunk", "16",
                                                                        "48"]):
        with pytest.raises(SystemExit):
            gen.main(["--device", "cpu", *bad])
    out = tmp_path / "g.json"
    assert gen.main(["--device", "cpu", "--quick", "--tiny", "--batches", "1", "--dtypes", "float32", "--models",
                     "sequnet", "--accuracy-steps", "0", "--steps", "4", "--profile-steps", "32",
                     "--out", str(out)]) == 0
    found = json.loads(out.read_text())
    assert found["meta"]["config"]["profile_steps"] == 32 and "profile" not in found["rows"][0]


@pytest.mark.parametrize("caller", [None, "0"], ids=["unset", "caller-says-own-launch"])
def test_generation_benchmark_times_the_start_where_the_library_puts_it_by_default(monkeypatch, caller):
    """--step-kernels on (the default) leaves SEQUNET_START_IN_HEAD as the caller had it, so that a default run
    times the library's default (until 2026-12-07 it forced the start into its own launch, and the default runs
    timed that); own and head force it, and the caller's setting comes back after."""
    gen = benchmark_module("generation")
    seen = []

    def speed(model, arch, device, batch, dtype, modes, *args):
        seen.append((modes, os.environ.get("SEQUNET_START_IN_HEAD")))
        return []
    monkeypatch.setattr(gen, "speed", speed)
    monkeypatch.setattr(gen.kernels, "resolved_kernel", lambda *args: "rowdot")    # a Triton path, as on a GPU
    if caller is None:
        monkeypatch.delenv("SEQUNET_START_IN_HEAD", raising=False)
    else:
        monkeypatch.setenv("SEQUNET_START_IN_HEAD", caller)
    gen.run(torch.device("cpu"), ["sequnet"], [1], [torch.bfloat16], ["graphs", "eager"], {}, 0, 1, 0, True,
            step_kernels=("on", "own", "head"))
    assert seen == [(["graphs", "eager"], caller), (["graphs"], "0"), (["graphs"], "1")]
    assert os.environ.get("SEQUNET_START_IN_HEAD") == caller
    # the torch path has no start kernel: "own" runs it once beside "on", and alone (call 5's dry run) too
    monkeypatch.setattr(gen.kernels, "resolved_kernel", lambda *args: "torch")
    seen.clear()
    gen.run(torch.device("cpu"), ["sequnet"], [1], [torch.bfloat16], ["graphs"], {}, 0, 1, 0, True,
            step_kernels=("on", "own", "head"))
    gen.run(torch.device("cpu"), ["sequnet"], [1], [torch.bfloat16], ["graphs"], {}, 0, 1, 0, True,
            step_kernels=("own", "head"))
    assert seen == [(["graphs"], caller), (["graphs"], "0")]


def test_piano_step_counts_fewer_flops_for_wavenet_with_cropped_skips(tmp_path):
    out = tmp_path / "step.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "piano_step.py"), "--device", "cpu", "--quick",
                    "--steps", "1", "--warmup", "1", "--profile-steps", "0", "--out", str(out), "--variants",
                    "wavenet fp32", "wavenet fp32 crop", "sequnet fp32 crop"], check=True, capture_output=True,
                   text=True, timeout=300)
    plain, cropped, sequnet_row = json.loads(out.read_text())["rows"]
    assert cropped["crop"] and not plain["crop"] and 0 < cropped["flops"] < plain["flops"]
    assert "no 'crop_skips' switch" in sequnet_row["error"]        # the Seq-U-Net has no skips to crop


def _same_piano_models(piano_step, *specs):
    """piano_step.py's variants and models (CPU, quick) for ``specs``, after checking that they compute the same."""
    found, outs = [], []
    for spec in specs:
        v = piano_step.parse(spec)
        torch.manual_seed(0)
        _, model, x, _ = piano_step.variant_model(v, torch.device("cpu"), 1, True)
        found.append((v, model))
        outs.append(model(x))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], rtol=1e-5, atol=1e-6)
    return found


def test_piano_step_keeps_the_default_layout_for_channels_first_variants():
    """"channels_first" leaves the activations channels-first (every other variant is channels-last, as the
    trainer runs), the row records it and the tables name the layout; the model computes the same."""
    from sequnet.analysis import benchmarks

    piano_step = benchmark_module("piano_step")
    for v, model in _same_piano_models(piano_step, "sequnet fp32 lookup", "sequnet fp32 lookup channels_first"):
        assert any(getattr(m, "channels_last", False) is True for m in model.modules()) is not v["channels_first"]
        assert benchmarks.variant({"piano_step": True}, v).endswith(
            "channels-first" if v["channels_first"] else "channels-last")
    # compiler settings by config and key, short enough for a table's column (a long word widened the book's)
    spec = "sequnet bf16 pad=64 compile inductor.triton.enable_pdl=True functorch.activation_memory_budget=0.5"
    assert benchmarks.variant({"piano_step": True}, {**piano_step.parse(spec), "spec": spec}) == (
        "bf16 pad=64 compile, Inductor: triton.enable_pdl, AOT autograd: activation_memory_budget=0.5, CUDA graphs, "
        "channels-last")


def test_piano_step_profiles_its_first_variant_as_timed_compiled_included(tmp_path):
    """The profile follows the first variant's switches: a compiled variant's table shows the compiled step (on
    the CPU about a minute, most of it compiling)."""
    out = tmp_path / "step.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "piano_step.py"), "--device", "cpu", "--quick",
                    "--steps", "1", "--warmup", "1", "--profile-steps", "1", "--out", str(out), "--variants",
                    "sequnet fp32 compile"], check=True, capture_output=True, text=True, timeout=600)
    report = out.with_suffix(".profile.txt").read_text()
    assert report.startswith("## sequnet fp32 compile, batch 16, not graphed")
    assert "CompiledFunctionBackward" in report and "aten::" in report
    copies = report[report.index("### copies (aten::copy_, aten::_to_copy, aten::clone) by input shapes and "
                                 "caller"):]
    assert "| operator | input shapes | called by | calls/step | device ms/step |" in copies
    # each copy names the operator that ran it, and a copy run inside another (aten::_to_copy's aten::copy_)
    # counts once, with the outer one
    rows = [line.split(" | ") for line in copies.splitlines() if line.startswith("| aten::")]
    assert rows and all(r[2] and r[2] not in ("aten::copy_", "aten::_to_copy", "aten::clone") for r in rows)


def test_piano_step_sums_the_profiled_kernels_by_kind_per_step():
    """The profile's summary: each kernel's kind from its name (the lookup's Triton kernels, cuDNN's three
    convolution passes, Inductor's kernels, ...), device time and launches per step, sorted by time, with the
    longest kernels after."""
    piano_step = benchmark_module("piano_step")
    kernels = [("sm90_xmma_fprop_implicit_gemm_bf16", 3000.0), ("sm90_xmma_wgrad_indexed_implicit_gemm", 1000.0),
               ("_sorted_grad_kernel", 400.0), ("triton_poi_fused_add_cat_mul_sigmoid_0", 500.0),
               ("void at::native::cunn_SoftMaxForward<8>", 100.0), ("sm90_xmma_fprop_implicit_gemm_bf16", 3000.0),
               ("void at::native::radixSortKVInPlace", 200.0), ("mystery", 800.0)]
    text = piano_step.kernel_summary(kernels, steps=2, top=3)
    kinds = [line.split(" | ")[0][2:] for line in text.splitlines()[4:11]]
    assert kinds == ["convolution forward (cuDNN)", "convolution weight gradient (cuDNN)", "other",
                     "Inductor's fused kernels", "input lookup (Triton)", "sort and search", "softmax and loss"]
    assert "| convolution forward (cuDNN) | 3.00 | 1 | 66.7% |" in text      # 6 ms over 2 steps, of 9 ms
    assert "| all | 4.50 | 4 | 100.0% |" in text
    assert "| `sm90_xmma_fprop_implicit_gemm_bf16` | convolution forward (cuDNN) | 3.000 | 1 |" in text
    assert text.count("| `") == 3
    assert piano_step.kernel_summary([], steps=3).startswith("No GPU kernels")


def test_piano_step_counts_cublas_kernels_as_matrix_products():
    """The weight gradients by products (``mm_wgrad``) run cuBLAS's kernels, whose names hold "xmma" as cuDNN's
    do, or are nvjet's."""
    piano_step = benchmark_module("piano_step")
    for name in ("nvjet_tst_128x192_64x4_1x2_h_bz_coopA_TNT", "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128",
                 "cutlass_80_tensorop_s1688gemm_128x128_16x3_nt_align4"):
        assert piano_step.kernel_kind(name) == "matrix products (cuBLAS)", name
    assert piano_step.kernel_kind("sm90_xmma_wgrad_indexed_implicit_gemm") == "convolution weight gradient (cuDNN)"
    assert piano_step.kernel_kind("_wgrad_kernel") == "convolution weight gradient (Triton)"
    assert piano_step.kernel_kind("cudnn::engines_precompiled::convertTensor_kernel") == "convolution, other (cuDNN)"


def test_piano_step_runs_the_weight_gradients_by_products_and_restores_the_precision(tmp_path,
                                                                                      matmul_precision_calls):
    out = tmp_path / "step.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "piano_step.py"), "--device", "cpu", "--quick",
                    "--steps", "1", "--warmup", "1", "--profile-steps", "0", "--out", str(out), "--variants",
                    "sequnet fp32 mm_wgrad", "wavenet fp32 crop mm_wgrad"], check=True, capture_output=True,
                   text=True, timeout=300)
    rows = json.loads(out.read_text())["rows"]
    assert [r["mm_wgrad"] for r in rows] == [True, True] and not any("error" in r for r in rows)
    piano_step = benchmark_module("piano_step")
    before, calls = torch.get_float32_matmul_precision(), matmul_precision_calls
    with piano_step.variant_settings(piano_step.parse("sequnet fp32 mm_wgrad")):
        assert torch.get_float32_matmul_precision() == "high"
    assert torch.get_float32_matmul_precision() == before and calls == ["high", before]
    # a variant without the products leaves the precision alone: setting it, even to its value, changes torch's
    # state (call 9 of speed_gpu_call.sh found that harmless to the compiled steps, but nothing asks for it)
    with piano_step.variant_settings(piano_step.parse("wavenet bf16 crop compile lookup cudnn_benchmark")):
        pass
    assert calls == ["high", before]


def test_piano_step_runs_a_variant_under_its_autotuner_setting_from_the_flop_count_on(monkeypatch):
    """cuDNN keeps the plan it first ran for a convolution's shapes, whether the autotuner chose it or not: the
    FLOP count, the variant's first convolutions, must run under the variant's setting too (it did not from
    854c29b on, and the compiled steps with the autotuner ran on heuristic plans, WaveNet 124.54 against 94.02 ms
    on an H100)."""
    piano_step = benchmark_module("piano_step")
    seen = []
    monkeypatch.setattr(piano_step, "step_flops", lambda *a: seen.append(torch.backends.cudnn.benchmark) or 1)

    def timed(*args, **kwargs):
        seen.append(torch.backends.cudnn.benchmark)
        return {"time_median_s": 1.0, "peak_memory_mib": None}

    monkeypatch.setattr(piano_step, "time_training_step", timed)
    for spec, flag in (("sequnet fp32 cudnn_benchmark", True), ("sequnet fp32", False)):
        seen.clear()
        row, report = piano_step.measure(piano_step.parse(spec), torch.device("cpu"), 2, 1, 1, quick=True)
        assert seen == [flag, flag] and row["flops"] == 1 and report is None
        assert torch.backends.cudnn.benchmark is False


def test_piano_step_keeps_variants_with_and_without_the_autotuner_in_processes_of_their_own(tmp_path):
    """One GPU process refuses variants with and without cuDNN's autotuner (the second would run the first's
    plans); --append gathers the rows of separate processes in one file, from the same GPU, torch, commit and
    timing settings only."""
    piano_step = benchmark_module("piano_step")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    mixed = [piano_step.parse("wavenet bf16 crop lookup"), piano_step.parse("wavenet bf16 crop lookup cudnn_benchmark")]
    with pytest.raises(ValueError, match="with and without cudnn_benchmark in one process"):
        piano_step.check_autotuner(mixed, cuda)
    piano_step.check_autotuner(mixed, cpu)                  # no cuDNN
    piano_step.check_autotuner(mixed[1:] * 2, cuda)
    script, out = str(REPO / "benchmarks" / "piano_step.py"), tmp_path / "step.json"
    refused = subprocess.run([sys.executable, script, "--device", "cuda", "--variants", "sequnet bf16",
                              "sequnet bf16 cudnn_benchmark"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "a process of its own (--append" in refused.stderr

    def run(variant, *extra):
        return subprocess.run([sys.executable, script, "--device", "cpu", "--quick", "--steps", "1", "--warmup",
                               "1", "--profile-steps", "1", "--out", str(out), "--variants", variant, *extra],
                              capture_output=True, text=True, timeout=300)

    first = run("sequnet fp32")
    assert first.returncode == 0, first.stderr
    profile = out.with_suffix(".profile.txt").read_text()
    second = run("sequnet fp32 cudnn_benchmark", "--append")
    assert second.returncode == 0, second.stderr
    bench = json.loads(out.read_text())
    assert [r["cudnn_benchmark"] for r in bench["rows"]] == [False, True] and bench["meta"]["processes"] == 2
    assert out.with_suffix(".profile.txt").read_text() == profile      # the file's first variant keeps its profile
    other = run("sequnet fp32", "--append", "--batch", "8")
    assert other.returncode == 2 and "batch=16" in other.stderr and len(json.loads(out.read_text())["rows"]) == 2


def test_piano_step_counts_the_triton_weight_gradients_as_the_products(tmp_path):
    """``triton_wgrad``: the weight gradients by weight_grad's Triton kernel (the products on a CPU, where Triton
    does not run), its FLOPs counted as the products' (torch's counter does not see a Triton launch). ``cf_wgrad``:
    the convolution's own weight gradient from channels-first copies, counted as the same FLOPs."""
    out = tmp_path / "step.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "piano_step.py"), "--device", "cpu", "--quick",
                    "--steps", "1", "--warmup", "1", "--profile-steps", "0", "--out", str(out), "--variants",
                    "sequnet fp32 mm_wgrad", "sequnet fp32 triton_wgrad", "sequnet fp32 cf_wgrad"], check=True,
                   capture_output=True, text=True, timeout=300)
    products, kernel, copies = json.loads(out.read_text())["rows"]
    assert (products["wgrad_kernel"], kernel["wgrad_kernel"]) == ("products", "triton") and kernel["mm_wgrad"]
    assert copies["wgrad_kernel"] == "cudnn_cf" and copies["mm_wgrad"]
    assert kernel["flops"] == products["flops"] == copies["flops"] > 0


def test_weight_grad_kernels_benchmark_times_each_layer_geometry_each_way(tmp_path):
    """benchmarks/weight_grad_kernels.py on a CPU: the convolution geometries of both piano models (WaveNet's
    output layers twice, with their weight's slices) in groups of alike ones, ATen's (also from channels-first
    copies) and the products' weight gradients checked against each other and timed, summed per model and dtype
    with each group's FLOPs; no Triton without it. --ways leaves the others out, ATen's kept as the reference."""
    out = tmp_path / "wg.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_grad_kernels.py"), "--device", "cpu",
                    "--quick", "--reps", "1", "--batch", "2", "--out", str(out)], check=True, capture_output=True,
                   text=True, timeout=300, env={k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"})
    bench = json.loads(out.read_text())
    assert {r["way"] for r in bench["rows"]} == {"cudnn", "cudnn_cf", "cudnn_cf_copies", "products"}
    assert not bench["meta"]["triton"]
    # float32 products in TF32 where cuDNN's convolutions are (until dc7d64c they ran in full float32)
    assert bench["meta"]["tf32_conv"] and bench["meta"]["tf32_matmul"]
    totals = {(s["arch"], s["dtype"]): s for s in bench["totals"]}
    assert set(totals) == {(a, d) for a in ("sequnet", "wavenet") for d in ("float32", "bfloat16")}
    wavenet = [r for r in bench["rows"] if (r["arch"], r["dtype"], r["way"]) == ("wavenet", "float32", "cudnn")]
    assert totals[("wavenet", "float32")]["layers"] == sum(r["layers"] for r in wavenet) > len(wavenet)
    # each group's time counts for all its layers' FLOPs: the scales add up to the model's weight gradients
    wgk = benchmark_module("weight_grad_kernels")
    found = wgk.geometries("wavenet", torch.device("cpu"), 2, True, False)
    assert sum(r["flops"] * r["scale"] for r in wavenet) == pytest.approx(
        sum(wgk.flops(g) * count for g, count in found.items()))
    assert all(r["scale"] >= 1 for r in wavenet) and bench["meta"]["finished"]
    assert all(s[f"{way}_s"] > 0 for s in totals.values() for way in ("cudnn", "cudnn_cf", "cudnn_cf_copies",
                                                                     "products"))
    assert all(r["max_error"] < 1e-2 for r in bench["rows"])
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_grad_kernels.py"), "--device", "cpu",
                    "--quick", "--reps", "1", "--batch", "2", "--archs", "sequnet", "--dtypes", "fp32", "--ways",
                    "cudnn", "--out", str(out)], check=True, capture_output=True, text=True, timeout=300)
    some = json.loads(out.read_text())
    assert {r["way"] for r in some["rows"]} == {"cudnn"} and some["meta"]["ways"] == ["cudnn"]
    assert some["totals"][0]["products_s"] is None and some["totals"][0]["cudnn_s"] > 0
    refused = subprocess.run([sys.executable, str(REPO / "benchmarks" / "weight_grad_kernels.py"), "--tiles", "8x64x64",
                              "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "powers of 2 of at least 16" in refused.stderr


def test_weight_grad_kernels_benchmark_keeps_going_past_a_failing_tile(monkeypatch):
    """A Triton tile that fails on a geometry (an error, or a wrong result) is a row saying why, and the other
    tiles are still checked and timed; the totals give no sum for the failed tile. cuDNN's and the products'
    failures still stop the run."""
    wgk = benchmark_module("weight_grad_kernels")
    from sequnet.core.models import weight_grad

    def kernel(whole, shifted, k, stride, dilation, *, tile, warps, stages):
        if tile == (16, 16, 16):
            raise RuntimeError("out of resource: shared memory")
        products = weight_grad.weight_grad(shifted.transpose(1, 2), whole.transpose(1, 2), k, stride, dilation,
                                           False)
        return products * (2 if tile == (32, 16, 16) else 1)     # wrong
    monkeypatch.setattr(weight_grad, "weight_grad_triton", kernel)
    geometry = ((2, 16, 40), (16, 16, 3), 1, 2, False)
    rows = wgk.time_geometry(geometry, 3, 1.5, torch.float32, [(16, 16, 16), (32, 16, 16), (64, 16, 16)], [4],
                             torch.device("cpu"), 1, True)
    by_tile = {tuple(r["tile"]) if r["tile"] else r["way"]: r for r in rows}
    assert "out of resource" in by_tile[(16, 16, 16)]["failed"] and "max error" in by_tile[(32, 16, 16)]["failed"]
    assert "failed" not in by_tile[(64, 16, 16)] and by_tile[(64, 16, 16)]["time_median_s"] > 0
    assert all(r["scale"] == 1.5 and r["layers"] == 3 for r in rows)
    (total,) = wgk.totals([{"arch": "sequnet", **r} for r in rows])
    assert total["triton_one_tile"] == [64, 16, 16] and total["cudnn_s"] > 0


def test_piano_step_variants_name_the_compile_mode():
    """"autotune" compiles in Inductor's max-autotune mode without its CUDA graphs (the step is replayed from our
    own graph); "compile" in the default mode. (A CPU run of an autotuned variant takes minutes, so only the
    parsing is tested here.)"""
    code = ("import json, sys; sys.path.insert(0, 'benchmarks'); import piano_step; print(json.dumps("
            "[piano_step.parse(s) for s in ('wavenet bf16 crop autotune', 'sequnet bf16 compile', 'sequnet bf16')]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr
    autotuned, compiled, plain = json.loads(done.stdout)
    assert autotuned["compile"] and autotuned["compile_mode"] == "max-autotune-no-cudagraphs" and autotuned["crop"]
    assert compiled["compile"] and compiled["compile_mode"] is None
    assert not plain["compile"] and plain["compile_mode"] is None


def test_piano_step_coord_tunes_inductors_kernels_while_its_variant_compiles():
    """"coord" turns Inductor's coordinate-descent tuning on for the variant (its compile happens inside
    variant_settings) and off again after; without compile it is refused, since it would change nothing; so is
    compile_loss."""
    import torch._inductor.config as inductor_config

    piano_step = benchmark_module("piano_step")
    before = inductor_config.coordinate_descent_tuning
    for spec, tuned in (("sequnet bf16 compile coord", True), ("sequnet bf16 compile", before)):
        with piano_step.variant_settings(piano_step.parse(spec)):
            assert inductor_config.coordinate_descent_tuning is tuned
        assert inductor_config.coordinate_descent_tuning is before
    assert piano_step.parse("wavenet bf16 crop autotune coord")["coord"]
    with pytest.raises(ValueError, match="coord tunes Inductor's kernels, so it needs compile"):
        piano_step.parse("sequnet bf16 coord")
    # compile_loss: the model and the loss compiled as one function (training_step's compile_loss)
    assert piano_step.parse("sequnet bf16 compile compile_loss")["compile_loss"]
    assert not piano_step.parse("sequnet bf16 compile")["compile_loss"]
    with pytest.raises(ValueError, match="compile_loss compiles the loss with the model, so it needs compile"):
        piano_step.parse("sequnet bf16 compile_loss")
    refused = subprocess.run([sys.executable, str(REPO / "benchmarks" / "piano_step.py"), "--device", "cpu",
                              "--variants", "sequnet bf16 coord"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "needs compile" in refused.stderr


def test_piano_step_sets_a_compiler_setting_for_its_variant_only():
    """"inductor.KEY=VALUE" and "functorch.KEY=VALUE" patch torch's compiler configs while the variant compiles
    and runs, and restore them after; an unknown key, a value that is no literal and a variant without compile are
    refused, naming the word."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    piano_step = benchmark_module("piano_step")
    fusion, budget = inductor_config.aggressive_fusion, functorch_config.activation_memory_budget
    v = piano_step.parse("sequnet bf16 pad=64 compile inductor.aggressive_fusion=True "
                         "functorch.activation_memory_budget=0.5")
    assert v["config_patches"] == {"inductor": {"aggressive_fusion": True},
                                   "functorch": {"activation_memory_budget": 0.5}} and v["pad"] == 64
    with piano_step.variant_settings(v):
        assert inductor_config.aggressive_fusion is True and functorch_config.activation_memory_budget == 0.5
    assert (inductor_config.aggressive_fusion, functorch_config.activation_memory_budget) == (fusion, budget)
    assert piano_step.parse("sequnet bf16 compile")["config_patches"] == {}
    with pytest.raises(ValueError, match="'inductor.no_such_setting=1' is not inductor.KEY=VALUE"):
        piano_step.parse("sequnet bf16 compile inductor.no_such_setting=1")
    with pytest.raises(ValueError, match="the value must be a Python literal"):
        piano_step.parse("sequnet bf16 compile inductor.aggressive_fusion=yes")
    with pytest.raises(ValueError, match="compiler settings change what torch.compile makes, so they need compile"):
        piano_step.parse("sequnet bf16 inductor.aggressive_fusion=True")


def test_piano_step_sort_all_and_partials_restore_the_lookups_backward_after_them():
    """"sort_all" sorts the lookup backward's positions by id all at once (the kernel until 2026-12-06) for its
    variant, "partials" adds its pieces' sums class by class, and the chunks and the atomic adds come back after;
    the row records both; without lookup each is refused."""
    from sequnet.core.models import id_lookup

    piano_step = benchmark_module("piano_step")
    chunk, reduce = id_lookup.CHUNK, id_lookup.REDUCE
    assert chunk and reduce == "atomic"
    for spec, expected in (("sequnet bf16 compile lookup sort_all", (None, reduce)),
                           ("sequnet bf16 lookup partials", (chunk, "partials")),
                           ("sequnet bf16 lookup", (chunk, reduce))):
        v = piano_step.parse(spec)
        assert (v["lookup_chunk"], v["lookup_reduce"]) == expected
        with piano_step.variant_settings(v):
            assert (id_lookup.CHUNK, id_lookup.REDUCE) == expected
        assert (id_lookup.CHUNK, id_lookup.REDUCE) == (chunk, reduce)
    for word in ("sort_all", "partials"):
        with pytest.raises(ValueError, match=f"{word} changes the Triton lookup's backward, so it needs lookup"):
            piano_step.parse(f"wavenet bf16 {word}")


def test_piano_step_table_marks_the_targets_and_the_models_own_flops(tmp_path):
    from sequnet.analysis import piano_steps
    meta = {"device": "GPU", "torch": "2", "date": "2026-12-02", "batch": 16, "steps": 10, "warmup": 4}
    rows = [{"spec": "sequnet bf16", "arch": "sequnet", "bf16": True, "pad": 0, "flops": 7e12,
             "tflops_per_s": 140.0, "time_median_s": 0.050, "peak_memory_mib": 4580.0},
            {"spec": "sequnet bf16 pad=64", "arch": "sequnet", "bf16": True, "pad": 64, "flops": 8e12,
             "tflops_per_s": 400.0, "time_median_s": 0.020, "peak_memory_mib": 4900.0},
            {"spec": "wavenet bf16 compile", "arch": "wavenet", "error": "TimeoutError: x"},
            # a row whose cuDNN plans its name misstates says so (piano_steps.CUDNN_PLANS)
            {"spec": "wavenet bf16 cudnn_benchmark", "arch": "wavenet", "bf16": True, "pad": 0, "flops": 18e12,
             "tflops_per_s": 90.0, "time_median_s": 0.200, "peak_memory_mib": 20000.0, "cudnn_plans": "heuristic"}]
    (tmp_path / "piano-step-x.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    table = piano_steps.piano_step_markdown(tmp_path)
    assert ("| wavenet bf16 cudnn_benchmark (cuDNN's plans fixed before the autotuner was on) | 200.00 |") in table
    assert "| sequnet bf16 | 50.00 | 7.00 | 140 | 140 | 4,580 | ≤ 25 (not met) |" in table
    # the padded step runs 8 TFLOP, but the model is the 7 TFLOP one: 350 TFLOP/s of the model
    assert "| sequnet bf16 pad=64 | 20.00 | 8.00 | 400 | 350 | 4,900 | ≤ 25 (met) |" in table
    # just above the target is not met, and says so to the hundredth of a millisecond
    rows[1].update(time_median_s=0.02504, tflops_per_s=320.0)
    (tmp_path / "piano-step-x.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    assert "| sequnet bf16 pad=64 | 25.04 | 8.00 | 320 | 280 | 4,900 | ≤ 25 (not met) |" in \
        piano_steps.piano_step_markdown(tmp_path)
    assert "failed: TimeoutError" in table
    assert "No piano-step benchmark" in piano_steps.piano_step_markdown(tmp_path / "none")
    # a file from another GPU gets its own table, headed by its GPU, the newest file's GPU first
    other = {**meta, "device": "Other GPU", "date": "2026-12-05"}
    (tmp_path / "piano-step-y.json").write_text(json.dumps({"meta": other, "rows": rows[:1]}))
    first, second = piano_steps.piano_step_markdown(tmp_path).split("\n\nGPU, torch 2, 2026-12-02")
    assert first.startswith("Other GPU, torch 2, 2026-12-05") and first.count("| sequnet bf16 |") == 1
    assert "| sequnet bf16 pad=64 |" in second and "piano-step-y.json" not in second


def test_trainer_loop_benchmark_times_both_models_with_and_without_prefetching(tmp_path):
    out = tmp_path / "loop.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "trainer_loop.py"), "--device", "cpu", "--quick",
                    "--out", str(out)], check=True, capture_output=True, text=True)
    bench = json.loads(out.read_text())
    assert [(r["arch"], r["prefetch"]) for r in bench["rows"]] == [
        ("sequnet", False), ("sequnet", True), ("wavenet", False), ("wavenet", True)]
    for r in bench["rows"]:
        assert r["steps"] == 6 and r["median_step_ms"] > 0
        assert r["loop_ms_per_step"] == pytest.approx(r["epoch_per_step_ms"] - r["median_step_ms"])
    assert bench["meta"]["scale"] == "smoke" and bench["meta"]["device"] == "cpu"


def test_the_benchmarks_score_the_logits_as_the_trainer_does_keeping_their_gradient_channels_last():
    """The benchmarks' loss is the trainer's: no slice to the targets' length, whose backward zero-filled a
    channels-first gradient that cuDNN then copied back to channels-last (0.14 ms of the compiled piano step)."""
    from sequnet.experiment.tasks import mean_cross_entropy
    training = benchmark_module("training")
    setting = training.setting_for("piano_audio", "sequnet", True)
    time_major = torch.randn(2, 64, 256, requires_grad=True)   # channels-last logits: classes adjacent in memory
    targets = torch.randint(0, 256, (2, 64))
    loss = training.loss_fn(setting, time_major.transpose(1, 2), targets)
    loss.backward()
    assert time_major.grad.is_contiguous()                     # the gradient keeps the logits' layout
    assert torch.equal(loss, mean_cross_entropy("piano_audio", time_major.transpose(1, 2), targets)[0])
    with pytest.raises(ValueError, match="scores 65 positions per window, the task 64"):
        training.loss_fn(setting, torch.randn(2, 256, 65), targets)


def test_grid_barrier_benchmark_refuses_what_its_kernels_cannot_run(tmp_path, monkeypatch, capsys):
    """benchmarks/grid_barrier.py names what is wrong before it launches anything: rows a program that are not a
    power of 2, a persistent kernel with more programs than can run at once (its barrier would wait forever: on
    the CPU, whose interpreter runs programs one after another, more than one), and no Triton to run it with."""
    script = benchmark_module("grid_barrier")
    cpu = torch.device("cpu")
    script.check_programs(4, 64, cpu, "launches")
    with pytest.raises(ValueError, match="--programs 3: must divide --widths 64"):
        script.check_programs(3, 64, cpu, "launches")
    with pytest.raises(ValueError, match="--programs 16: must divide --widths 768 into a power of 2"):
        script.check_programs(16, 768, cpu, "launches")        # 48 rows a program
    with pytest.raises(ValueError, match="one after another; its barrier would never open. Give at most 1"):
        script.check_programs(4, 64, cpu, "persistent")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(SystemExit) as e:
        script.main(["--device", "cpu", "--quick", "--out", str(tmp_path / "gb.json")])
    assert e.value.code == 2 and "TRITON_INTERPRET=1" in capsys.readouterr().err
    assert not (tmp_path / "gb.json").exists()
