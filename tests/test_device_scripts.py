"""The scripts that prepare and run the GPU machine's work refuse bad input before they cost anything: a mistyped
variant of benchmarks/device_prep.sh, a data mirror that lacks files the GPU suite reads (benchmarks/gpu_test.sh).
They run here on the CPU, with an interpreter that answers the GPU script's checks of the machine."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_device_prep_refuses_an_unknown_variant_before_removing_the_carry(tmp_path):
    """2026-12-03: `device_prep.sh --help` removed .whl and .devdata, copied them afresh and only then refused the
    argument; the piano variant made earlier was gone."""
    shared = tmp_path / "shared"
    (shared / "device-wheels").mkdir(parents=True)
    (shared / "data").mkdir()
    work = tmp_path / "checkout"
    (work / ".whl").mkdir(parents=True)
    (work / ".whl" / "kept.whl").write_text("made earlier")
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "device_prep.sh"), "--help"], cwd=work,
                          env=dict(os.environ, SHARED=str(shared), PYTHON=sys.executable), capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "give tests or piano, not --help" in done.stderr
    assert (work / ".whl" / "kept.whl").read_text() == "made earlier"


def _gpu_machine_python(tmp_path: Path) -> Path:
    """An interpreter that says a GPU is there and the wheels are installed, prints a header for the log and
    stands in for pytest (which would run the whole suite; it names a temporary folder, as a failing test's traceback
    does): everything else runs in this Python."""
    python = tmp_path / "python"
    python.write_text(f"""#!/usr/bin/env bash
case "$1 $2" in
  "-c import torch, sys"*|"-c import papermill"*) exit 0 ;;
  "- ") cat >/dev/null; echo "# a GPU"; exit 0 ;;
  "-m pytest") echo "pytest ran in /tmp/pytest-of-root/pytest-7/popen-gw0/data-root0"
              echo "long tests first by ${{SEQUNET_TEST_DURATIONS:-none}}"; exit 0 ;;
esac
exec {sys.executable} "$@"
""")
    python.chmod(0o755)
    return python


def test_gpu_suite_stops_at_once_on_a_mirror_that_lacks_registered_files(tmp_path, data_mirror):
    """2026-12-03: the suite ran 383 s on the GPU machine with the piano variant of .devdata (no registered piano
    FLACs) and failed 15 tests. Now the mirror is verified first; a complete one lets the suite run."""
    python = _gpu_machine_python(tmp_path)
    script = ["bash", str(REPO / "benchmarks" / "gpu_test.sh"), str(tmp_path / "gpu-test.log")]
    env = dict(os.environ, PYTHON=str(python),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    partial = tmp_path / "mirror"
    (partial / "ptb").mkdir(parents=True)
    (partial / "MANIFEST.md").write_text("a mirror without most of its files\n")
    done = subprocess.run(script, cwd=REPO, env=dict(env, SEQUNET_DATA_MIRROR=str(partial)), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "piano/rendered/test/elise.flac" in done.stderr and "benchmarks/device_prep.sh tests" in done.stderr
    assert "pytest ran" not in done.stdout and not (tmp_path / "gpu-test.log").exists()

    done = subprocess.run(script, cwd=REPO, env=dict(env, SEQUNET_DATA_MIRROR=str(data_mirror)), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # a traceback's temporary folder is this machine's: the log shows it without the machine's path
    log = (tmp_path / "gpu-test.log").read_text()
    assert "pytest ran in <pytest-tmp>/popen-gw0/data-root0" in log
    # pytest is told the newest committed suite's log that timed its slowest tests (tests/xdist_order.py)
    timed = {f: f.read_text(errors="replace") for f in (REPO / "results" / "gpu-test").glob("*.log")}
    dated = sorted((text.splitlines()[0], f) for f, text in timed.items()
                   if text.startswith("# GPU test suite, ") and "slowest" in text and " durations ====" in text)
    assert f"long tests first by {dated[-1][1].relative_to(REPO)}" in log


def _python3_first(tmp_path) -> str:
    """A PATH whose python3 is this interpreter (a venv's own), as the GPU machine's python3 is its torch's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(f"#!/usr/bin/env bash\nexec {sys.executable} \"$@\"\n")
    (bin_dir / "python3").chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


SPEED_CALL = ["bash", str(REPO / "benchmarks" / "speed_gpu_call.sh")]


def _dry_env(tmp_path, data_mirror, **more) -> dict:
    """The environment of a dry run (QUICK=1) of benchmarks/speed_gpu_call.sh on this CPU."""
    return dict(os.environ, PATH=_python3_first(tmp_path), QUICK="1", SEQUNET_DATA_MIRROR=str(data_mirror), **more)


def _dry_run(tmp_path, data_mirror, call: int, out: str) -> None:
    """Call ``call`` of benchmarks/speed_gpu_call.sh as a dry run into tmp_path/out, which must succeed."""
    done = subprocess.run(SPEED_CALL + [str(tmp_path / out)], cwd=REPO,
                          env=_dry_env(tmp_path, data_mirror, CALL=str(call), CALL_S="300"), capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.dry_run
def test_speed_call_dry_run_measures_both_launches_and_bounds_its_steps(tmp_path, data_mirror):
    """benchmarks/speed_gpu_call.sh as a CPU dry run (QUICK=1): call 2's generation benchmark (PDL and the step
    kernels, each on and off) and piano step, call 3's piano steps (the lookup's three backwards, compiled and not)
    and call 6's cuDNN autotuner, run with the flags the GPU call will pass and write their JSON; a step that
    cannot get 30 s of the call is skipped and makes the exit status 4. (The other calls: the tests below, apart
    so that the GPU suite's workers share them out.)"""
    _dry_run(tmp_path, data_mirror, 2, "out")
    rows = json.loads((tmp_path / "out" / "generation-pdl-cpu.json").read_text())["rows"]
    # PDL needs a Hopper GPU: on the CPU only the plain launches run
    assert {(r["model"], r["batch"], r["pdl"]) for r in rows} == {(m, b, False) for m in ("sequnet", "wavenet")
                                                                  for b in (1, 28, 64)}
    # the Seq-U-Net with the lookup (uncompiled in a dry run), bf16 and TF32, the first one profiled
    steps = json.loads((tmp_path / "out" / "piano-step-compiled-lookup-cpu.json").read_text())["rows"]
    assert [(r["arch"], r["lookup"], r["bf16"]) for r in steps] == [("sequnet", True, True), ("sequnet", True, False)]
    assert not any("error" in r for r in steps)
    assert (tmp_path / "out" / "piano-step-compiled-lookup-cpu.profile.txt").read_text().startswith(
        "## sequnet bf16 pad=64 lookup, batch 16")
    # call 3: the lookup on and off (uncompiled in a dry run), the trainer's two compiled paths first (bf16 with the
    # lookup, TF32 without), then the same uncompiled, both models
    _dry_run(tmp_path, data_mirror, 3, "out3")
    steps = json.loads((tmp_path / "out3" / "piano-step-lookup-compiled-cpu.json").read_text())["rows"]
    assert [(r["bf16"], r["lookup"]) for r in steps] == [(True, True), (False, False), (False, True), (True, False)]
    assert (tmp_path / "out3" / "piano-step-lookup-compiled-cpu.profile.txt").read_text().startswith(
        "## sequnet bf16 pad=64 lookup cudnn_benchmark, batch 16")
    assert all(r["cudnn_benchmark"] for r in steps)     # the trainer's compiled path
    steps = json.loads((tmp_path / "out3" / "piano-step-lookup-eager-cpu.json").read_text())["rows"]
    assert [(r["arch"], r["bf16"], r["lookup"]) for r in steps] == [
        ("sequnet", True, False), ("sequnet", True, True), ("sequnet", False, False), ("sequnet", False, True),
        ("wavenet", True, False), ("wavenet", True, True)]
    assert not any("error" in r for r in steps)
    # call 6: the compiled piano steps (uncompiled in a dry run) with cuDNN's autotuner
    _dry_run(tmp_path, data_mirror, 6, "out6")
    steps = json.loads((tmp_path / "out6" / "piano-step-cudnn-benchmark-cpu.json").read_text())["rows"]
    assert [(r["bf16"], r["lookup"], r["cudnn_benchmark"]) for r in steps] == [(False, True, True), (True, True, True)]
    assert not any("error" in r for r in steps)
    assert (tmp_path / "out6" / "piano-step-cudnn-benchmark-cpu.profile.txt").read_text().startswith(
        "## sequnet fp32 pad=64 lookup cudnn_benchmark, batch 16")
    short = subprocess.run(SPEED_CALL + [str(tmp_path / "short")], cwd=REPO,
                           env=_dry_env(tmp_path, data_mirror, CALL="2", CALL_S="40"),
                           capture_output=True, text=True, timeout=120)
    assert short.returncode == 4 and "generation with and without PDL: skipped" in short.stdout, \
        short.stdout + short.stderr


@pytest.mark.dry_run
def test_speed_call_dry_run_times_the_generation_variants(tmp_path, data_mirror):
    """Calls 4 and 5 as CPU dry runs: the generation benchmark by graph length, and with each step's start in its own
    launch or in the head kernel before it."""
    # call 4: multi-step graphs of three lengths (on a CPU the graph mode runs eagerly, so each length a state)
    _dry_run(tmp_path, data_mirror, 4, "out4")
    rows = json.loads((tmp_path / "out4" / "generation-chunk-cpu.json").read_text())["rows"]
    assert sorted((r["model"], r["batch"], r["chunk"]) for r in rows) == sorted(
        (m, b, c) for m in ("sequnet", "wavenet") for b in (1, 64) for c in (16, 64, 256))
    # call 5: the start in its own launch and in the head before; on a CPU (no Triton) the first only
    _dry_run(tmp_path, data_mirror, 5, "out5")
    rows = json.loads((tmp_path / "out5" / "generation-start-in-head-cpu.json").read_text())["rows"]
    assert sorted((r["model"], r["batch"], r["dtype"], r["start_in_head"]) for r in rows) == sorted(
        (m, b, d, False) for m in ("sequnet", "wavenet") for b in (1, 64) for d in ("bfloat16", "float32"))


@pytest.mark.dry_run
def test_speed_call_dry_run_times_the_weight_gradients_and_the_numerics(tmp_path, data_mirror):
    """Calls 7 and 8 as CPU dry runs: the bf16 weight gradients by products and by cuDNN, and the fast step's
    numerics against the plain float32 model."""
    # call 7: the bf16 weight gradients by products and by cuDNN, each model uncompiled in a dry run
    _dry_run(tmp_path, data_mirror, 7, "out7")
    steps = [json.loads((tmp_path / "out7" / f"piano-step-mm-wgrad-bf16-compiled{way}-cpu.json").read_text())["rows"]
             for way in ("", "-cudnn")]
    assert [[(r["arch"], r["bf16"], r["mm_wgrad"], r["cudnn_benchmark"]) for r in rows] for rows in steps] == [
        [("sequnet", True, True, True)], [("sequnet", True, False, True)]]
    steps = json.loads((tmp_path / "out7" / "piano-step-mm-wgrad-bf16-eager-cpu.json").read_text())["rows"]
    assert [(r["arch"], r["bf16"], r["mm_wgrad"]) for r in steps] == [
        (a, True, m) for a in ("sequnet", "wavenet") for m in (True, False)]
    assert not any("error" in r for r in steps)
    # call 8: the numerics, uncompiled in a dry run
    _dry_run(tmp_path, data_mirror, 8, "out8")
    rows = json.loads((tmp_path / "out8" / "step-numerics-cpu.json").read_text())["rows"]
    assert {(r["arch"], r["mm_wgrad"], r["mode"]) for r in rows} == {
        (a, m, mode) for a in ("sequnet", "wavenet") for m in (False, True) for mode in ("tf32", "bf16")}


@pytest.mark.dry_run
def test_speed_call_dry_run_times_each_variant_in_a_process_of_its_own(tmp_path, data_mirror):
    """Calls 10 to 12 as CPU dry runs, each variant alone (--append gathers the rows): the autotuner on and off, the
    weight gradients three ways, and Inductor's coordinate-descent tuning; an unknown call is refused."""
    # call 10: the autotuner on and off, one process a variant, gathered in one file (uncompiled in a dry run)
    _dry_run(tmp_path, data_mirror, 10, "out10")
    found = json.loads((tmp_path / "out10" / "piano-step-autotuner-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["mm_wgrad"], r["cudnn_benchmark"]) for r in found["rows"]] == [
        (a, bf16, m, cb) for a, bf16, m in (("sequnet", True, False), ("wavenet", True, False),
                                          ("wavenet", True, True), ("sequnet", False, False),
                                          ("wavenet", False, True)) for cb in (False, True)]
    assert found["meta"]["processes"] == 10 and not any("error" in r for r in found["rows"])
    # call 11: the weight gradients alone (no Triton in a dry run), then the step variants, one process each
    _dry_run(tmp_path, data_mirror, 11, "out11")
    alone = json.loads((tmp_path / "out11" / "weight-grad-kernels-cpu.json").read_text())
    assert {r["way"] for r in alone["rows"]} == {"cudnn", "products"} and len(alone["totals"]) == 4
    found = json.loads((tmp_path / "out11" / "piano-step-triton-wgrad-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["mm_wgrad"], r["wgrad_kernel"]) for r in found["rows"]] == [
        ("sequnet", False, True, "triton"), ("sequnet", False, False, "products"), ("wavenet", True, True, "triton"),
        ("wavenet", True, True, "products")]
    # call 12: each variant alone (uncompiled in a dry run, so without coord, which needs a compile), the lookup's
    # backward sorted in chunks and all at once
    _dry_run(tmp_path, data_mirror, 12, "out12")
    found = json.loads((tmp_path / "out12" / "piano-step-coord-cpu.json").read_text())
    from sequnet.core.models.id_lookup import CHUNK as chunk
    assert [(r["arch"], r["cudnn_benchmark"], r["coord"], r["lookup_chunk"]) for r in found["rows"]] == [
        ("sequnet", True, False, chunk), ("sequnet", True, False, None), ("sequnet", True, False, chunk),
        ("wavenet", True, False, chunk), ("wavenet", True, False, chunk), ("wavenet", True, False, None)]
    assert found["meta"]["processes"] == 6


@pytest.mark.dry_run
def test_speed_calls_14_16_and_17_time_the_compiled_loss_and_the_compilers_settings(tmp_path, data_mirror):
    """Calls 14 and 16 as CPU dry runs: each step variant alone, the loss compiled with the model and not (a dry
    run compiles nothing: the variants without it), TF32; then the compiler's settings and the launch settings; an
    unknown call is refused
    (13 and 15 were removed with the lookup's taps gathered together)."""
    _dry_run(tmp_path, data_mirror, 14, "out14")
    found = json.loads((tmp_path / "out14" / "piano-step-compile-loss-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["compile_loss"]) for r in found["rows"]] == [
        ("sequnet", True, False), ("wavenet", True, False), ("sequnet", False, False), ("sequnet", True, False),
        ("wavenet", True, False)]
    # call 16: the compiler's settings, each alone (the plain step six times in a dry run, which compiles nothing)
    _dry_run(tmp_path, data_mirror, 16, "out16")
    found = json.loads((tmp_path / "out16" / "piano-step-compiler-settings-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["config_patches"]) for r in found["rows"]] == [("sequnet", True, {})] * 6
    assert found["meta"]["processes"] == 6 and not any("error" in r for r in found["rows"])
    # call 17: the launch settings, each alone, both models (the plain steps in a dry run)
    _dry_run(tmp_path, data_mirror, 17, "out17")
    found = json.loads((tmp_path / "out17" / "piano-step-launch-gaps-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["config_patches"]) for r in found["rows"]] == [
        ("sequnet", True, {})] * 2 + [("wavenet", True, {})] * 2 + [("sequnet", True, {})] * 3
    assert found["meta"]["processes"] == 7 and not any("error" in r for r in found["rows"])
    unknown = subprocess.run(SPEED_CALL + [str(tmp_path / "unknown")], cwd=REPO,
                             env=_dry_env(tmp_path, data_mirror, CALL="15"),
                             capture_output=True, text=True, timeout=120)
    assert unknown.returncode == 2 and "CALL=15: expected 1 to 12, 14, 16 to 22, 24 to 34" in unknown.stderr


@pytest.mark.dry_run
def test_speed_call_18_times_the_lookups_partial_sums_beside_the_atomic_adds(tmp_path, data_mirror):
    """Call 18 as a CPU dry run: each step variant alone, the Seq-U-Net without and with the partial sums
    alternated, then WaveNet with and without them; each row records how the lookup's backward added its sums."""
    _dry_run(tmp_path, data_mirror, 18, "out18")
    found = json.loads((tmp_path / "out18" / "piano-step-lookup-reduce-cpu.json").read_text())
    assert [(r["arch"], r["lookup_reduce"]) for r in found["rows"]] == [
        ("sequnet", "atomic"), ("sequnet", "partials"), ("sequnet", "atomic"), ("sequnet", "partials"),
        ("wavenet", "partials"), ("wavenet", "atomic")]
    assert found["meta"]["processes"] == 6 and not any("error" in r for r in found["rows"])


@pytest.mark.dry_run
def test_speed_call_31_times_the_tf32_weight_gradients_by_the_kernel_alone_and_in_the_step(tmp_path, data_mirror):
    """Call 31 as a CPU dry run: the float32 weight gradients of both models alone (cuDNN's only: no Triton in a
    dry run), then the TF32 Seq-U-Net step with the kernel (profiled), with cuDNN's, and with the kernel again,
    each alone (uncompiled in a dry run, where the kernel's switch falls back to the products)."""
    _dry_run(tmp_path, data_mirror, 31, "out31")
    alone = json.loads((tmp_path / "out31" / "weight-grad-tf32-kernel-cpu.json").read_text())
    assert {(r["way"], r["dtype"]) for r in alone["rows"]} == {("cudnn", "float32")} and len(alone["totals"]) == 2
    found = json.loads((tmp_path / "out31" / "piano-step-tf32-triton-wgrad-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["mm_wgrad"], r["wgrad_kernel"]) for r in found["rows"]] == [
        ("sequnet", False, True, "triton"), ("sequnet", False, False, "products"), ("sequnet", False, True, "triton")]
    assert found["meta"]["processes"] == 3 and not any("error" in r for r in found["rows"])
    assert (tmp_path / "out31" / "piano-step-tf32-triton-wgrad-cpu.profile.txt").exists()


@pytest.mark.dry_run
def test_speed_calls_32_to_34_time_the_convolutions_operator_and_the_recomputed_gates(tmp_path, data_mirror):
    """Calls 32 to 34 as CPU dry runs: the Seq-U-Net's float32 weight gradients alone (cuDNN's only: no Triton in
    a dry run); its TF32 step with the operator and the recomputed gates (profiled), without either, and with each,
    each alone; then both models' bf16 steps with both and without either; then WaveNet's TF32 pair, the plain
    step first."""
    def switches(rows):
        return [(r["arch"], r["bf16"], r["conv_grads_op"], r["recompute_gate"]) for r in rows]

    _dry_run(tmp_path, data_mirror, 32, "out32")
    alone = json.loads((tmp_path / "out32" / "weight-grad-tf32-cf-cpu.json").read_text())
    assert {(r["arch"], r["way"]) for r in alone["rows"]} == {("sequnet", "cudnn")}
    found = json.loads((tmp_path / "out32" / "piano-step-conv-grads-gate-tf32-cpu.json").read_text())
    assert switches(found["rows"]) == [("sequnet", False, True, True), ("sequnet", False, False, False),
                                       ("sequnet", False, True, False), ("sequnet", False, False, True)]
    assert found["meta"]["processes"] == 4 and not any("error" in r for r in found["rows"])
    assert (tmp_path / "out32" / "piano-step-conv-grads-gate-tf32-cpu.profile.txt").exists()
    _dry_run(tmp_path, data_mirror, 33, "out33")
    for name, arch in (("bf16", "sequnet"), ("wavenet-bf16", "wavenet")):
        found = json.loads((tmp_path / "out33" / f"piano-step-conv-grads-gate-{name}-cpu.json").read_text())
        assert switches(found["rows"]) == [(arch, True, True, True), (arch, True, False, False)]
    _dry_run(tmp_path, data_mirror, 34, "out34")
    found = json.loads((tmp_path / "out34" / "piano-step-conv-grads-gate-wavenet-fp32-cpu.json").read_text())
    assert switches(found["rows"]) == [("wavenet", False, False, False), ("wavenet", False, True, True)]


@pytest.mark.dry_run
def test_speed_call_19_times_the_trainers_bf16_steps_with_and_without_combo_kernels(tmp_path, data_mirror):
    """Call 19 as a CPU dry run: the bf16 Seq-U-Net and WaveNet each twice (in a dry run, which compiles nothing,
    without the compiler's settings), each alone, and nothing profiled."""
    _dry_run(tmp_path, data_mirror, 19, "out19")
    found = json.loads((tmp_path / "out19" / "piano-step-combo-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["config_patches"]) for r in found["rows"]] == [
        ("sequnet", True, {})] * 2 + [("wavenet", True, {})] * 2
    assert found["meta"]["processes"] == 4 and not any("error" in r for r in found["rows"])
    assert not (tmp_path / "out19" / "piano-step-combo-cpu.profile.txt").exists()


@pytest.mark.dry_run
def test_speed_call_20_times_both_tf32_steps_in_both_layouts(tmp_path, data_mirror):
    """Call 20 as a CPU dry run: the TF32 Seq-U-Net and WaveNet, each channels-last and channels-first, each alone."""
    _dry_run(tmp_path, data_mirror, 20, "out20")
    found = json.loads((tmp_path / "out20" / "piano-step-tf32-layouts-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["channels_first"]) for r in found["rows"]] == [
        ("sequnet", False, False), ("sequnet", False, True), ("wavenet", False, False), ("wavenet", False, True)]
    assert found["meta"]["processes"] == 4 and not any("error" in r for r in found["rows"])


@pytest.mark.dry_run
def test_speed_call_21_times_generation_by_split_k_tile(tmp_path, data_mirror):
    """Call 21 as a CPU dry run: the generation benchmark at batches 64 and 28 in bf16 with six split-K tiles, both
    models (on the CPU, which has no split-K, each state once)."""
    _dry_run(tmp_path, data_mirror, 21, "out21")
    found = json.loads((tmp_path / "out21" / "generation-splitk-tiles-cpu.json").read_text())
    assert [(r["model"], r["batch"], r["dtype"]) for r in found["rows"]] == [
        ("sequnet", 64, "bfloat16"), ("wavenet", 64, "bfloat16"), ("sequnet", 28, "bfloat16"),
        ("wavenet", 28, "bfloat16")]
    assert found["meta"]["config"]["splitk_tiles"] == ["64x64", "32x64", "128x64", "64x32", "64x128", "32x32"]


@pytest.mark.dry_run
def test_speed_call_22_times_generation_by_the_split_k_tile_rule(tmp_path, data_mirror):
    """Call 22 as a CPU dry run: the generation benchmark at batches 64, 28 and 8 in bf16 with the tile rule beside
    four fixed tiles, then at batch 1 by rowdot's least of programs, both models (on the CPU, which has neither
    split-K nor rowdot, each state once)."""
    _dry_run(tmp_path, data_mirror, 22, "out22")
    found = json.loads((tmp_path / "out22" / "generation-splitk-rule-cpu.json").read_text())
    assert [(r["model"], r["batch"]) for r in found["rows"]] == [
        (m, b) for b in (64, 28, 8) for m in ("sequnet", "wavenet")]
    assert found["meta"]["config"]["splitk_tiles"] == ["64x64", "rule", "128x64", "32x32", "128x32"]
    least = json.loads((tmp_path / "out22" / "generation-rowdot-programs-cpu.json").read_text())
    assert [(r["model"], r["batch"]) for r in least["rows"]] == [("sequnet", 1), ("wavenet", 1)]
    assert least["meta"]["config"]["rowdot_programs"] == [64, 32, 128]


@pytest.mark.dry_run
def test_speed_call_24_times_generation_at_the_default_split_k_tile(tmp_path, data_mirror):
    """Call 24 as a CPU dry run: the generation benchmark at batches 8, 28 and 64 in bf16 with split-K's default
    tile (the rule's) beside the fixed 64x64 and 128x64, both models (on the CPU, which has no split-K, each state
    once). The removed call 23 is refused like any unknown call."""
    _dry_run(tmp_path, data_mirror, 24, "out24")
    found = json.loads((tmp_path / "out24" / "generation-splitk-default-cpu.json").read_text())
    assert [(r["model"], r["batch"]) for r in found["rows"]] == [
        (m, b) for b in (8, 28, 64) for m in ("sequnet", "wavenet")]
    assert found["meta"]["config"]["splitk_tiles"] == ["rule", "64x64", "128x64"]
    removed = subprocess.run(SPEED_CALL + [str(tmp_path / "removed")], cwd=REPO,
                             env=_dry_env(tmp_path, data_mirror, CALL="23"), capture_output=True, text=True,
                             timeout=120)
    assert removed.returncode == 2 and "CALL=23: expected 1 to 12, 14, 16 to 22, 24 to 34" in removed.stderr



@pytest.mark.dry_run
def test_speed_call_25_skips_the_grid_barrier_without_triton_and_times_generation_at_batch_1(tmp_path, data_mirror):
    """Call 25 as a CPU dry run: the grid barrier's chain needs Triton, which the dry run has not, so the log says it
    was skipped and no file is written for it; then generation at batch 1 in bf16, both models; then the weight
    gradients of both models' layers by ATen's convolution backward, channels-last and from channels-first copies."""
    _dry_run(tmp_path, data_mirror, 25, "out25")
    assert "grid barrier: skipped in a dry run (no Triton)" in (tmp_path / "out25" / "speed_gpu_call.log").read_text()
    assert not (tmp_path / "out25" / "grid-barrier-cpu.json").exists()
    found = json.loads((tmp_path / "out25" / "generation-batch1-cpu.json").read_text())
    assert [(r["model"], r["batch"], r["dtype"]) for r in found["rows"]] == [
        ("sequnet", 1, "bfloat16"), ("wavenet", 1, "bfloat16")]
    layouts = json.loads((tmp_path / "out25" / "weight-grad-layouts-cpu.json").read_text())
    assert layouts["meta"]["finished"] and layouts["meta"]["ways"] == ["cudnn", "cudnn_cf", "cudnn_cf_copies"]
    assert {(t["arch"], t["dtype"]) for t in layouts["totals"]} == {
        (a, d) for a in ("sequnet", "wavenet") for d in ("float32", "bfloat16")}
    assert all(t["cudnn_cf_s"] > 0 and t["products_s"] is None for t in layouts["totals"])

@pytest.mark.dry_run
def test_speed_call_26_times_tf32_steps_with_channels_first_weight_gradients(tmp_path, data_mirror):
    """Call 26 as a CPU dry run: the TF32 steps of both models (uncompiled here), each with cuDNN's weight
    gradients from channels-first copies and without, in that order, the first profiled."""
    _dry_run(tmp_path, data_mirror, 26, "out26")
    found = json.loads((tmp_path / "out26" / "piano-step-tf32-cf-wgrad-cpu.json").read_text())
    assert [(r["arch"], r["bf16"], r["wgrad_kernel"] if r["mm_wgrad"] else "cudnn") for r in found["rows"]] == [
        (arch, False, way) for arch in ("sequnet", "wavenet") for way in ("cudnn_cf", "cudnn")]
    assert found["meta"]["processes"] == 4
    assert (tmp_path / "out26" / "piano-step-tf32-cf-wgrad-cpu.profile.txt").exists()


@pytest.mark.dry_run
def test_speed_call_27_times_generation_with_the_start_where_the_library_puts_it(tmp_path, data_mirror):
    """Call 27 as a CPU dry run: generation at batches 1 and 64 in bf16, both models, with the step kernels as the
    library runs them and with the start in its own launch (on a CPU, without Triton, the first only, each state
    once whatever the tiles)."""
    _dry_run(tmp_path, data_mirror, 27, "out27")
    found = json.loads((tmp_path / "out27" / "generation-start-default-cpu.json").read_text())
    assert [(r["model"], r["batch"], r["start_in_head"]) for r in found["rows"]] == [
        (m, b, False) for b in (1, 64) for m in ("sequnet", "wavenet")]
    assert found["meta"]["config"]["step_kernels"] == ["on", "own"]


@pytest.mark.dry_run
def test_speed_call_28_profiles_generation_kernel_by_kernel(tmp_path, data_mirror):
    """Call 28 as a CPU dry run: generation at batches 1 and 64 in bf16, both models, with 1,024 steps a row to
    profile (a CPU's rows carry no profile: the profiler's kernels are a GPU's)."""
    _dry_run(tmp_path, data_mirror, 28, "out28")
    found = json.loads((tmp_path / "out28" / "generation-profile-cpu.json").read_text())
    assert [(r["model"], r["batch"], "profile" in r) for r in found["rows"]] == [
        (m, b, False) for b in (1, 64) for m in ("sequnet", "wavenet")]
    assert found["meta"]["config"]["profile_steps"] == 1024


@pytest.mark.dry_run
def test_speed_call_29_times_generation_three_ways_each_in_its_own_process(tmp_path, data_mirror):
    """Call 29 as a CPU dry run: generation at batches 1 and 64 in bf16, both models, as the library runs it (1,024
    steps a row to profile), with split-K's activation in a loop, and with the timed steps one short of a graph;
    the environment's switch reaches the second process only (on a CPU no state runs split-K, so no row says it
    unrolled; each file's settings do)."""
    _dry_run(tmp_path, data_mirror, 29, "out29")
    found = {name: json.loads((tmp_path / "out29" / f"generation-{name}-cpu.json").read_text())
             for name in ("unrolled", "rolled", "unaligned")}
    for name, bench in found.items():
        assert [(r["model"], r["batch"], r["splits_unrolled"]) for r in bench["rows"]] == [
            (m, b, False) for b in (1, 64) for m in ("sequnet", "wavenet")], name
    assert [found[n]["meta"]["config"]["aligned"] for n in found] == [True, True, False]
    assert [found[n]["meta"]["config"]["splits_unrolled"] for n in found] == [True, False, True]
    assert [found[n]["meta"]["config"]["profile_steps"] for n in found] == [1024, 0, 0]


def _older_tree_run(tmp_path, env: dict, script: str, head_file: str) -> None:
    """Calls 9 and 30 with ``env`` (AB_OLD=older): without the older tree (AB_TREE elsewhere) the call stops before
    running anything (``head_file`` not written), naming what to make; with one (this commit's, as `git archive`
    makes it) into tmp_path/out, which must succeed."""
    missing = subprocess.run(SPEED_CALL + [str(tmp_path / "missing")], cwd=REPO,
                             env=dict(env, AB_TREE=str(tmp_path / "none")), capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2 and f"no {tmp_path / 'none'}/benchmarks/{script}" in missing.stderr
    assert "git archive older sequnet benchmarks | tar x -C .ab/older" in missing.stderr
    assert not (tmp_path / "missing" / head_file).exists()
    tree = tmp_path / "older"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD", "sequnet", "benchmarks"], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "x", "-C", str(tree)], input=archive, check=True)
    done = subprocess.run(SPEED_CALL + [str(tmp_path / "out")], cwd=REPO, env=dict(env, AB_TREE=str(tree)),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.dry_run
def test_speed_call_30_times_generation_of_an_older_tree_and_this_one_alternately(tmp_path, data_mirror):
    """Call 30 as a CPU dry run: generation at batches 1 and 64 in bf16, both models, from an older tree (here this
    commit's, as `git archive` makes it) and from the checkout, alternately, twice, each labelled with its commit;
    the checkout's first run asks for the profile. Without the older tree it stops before running anything, naming
    what to make."""
    env = _dry_env(tmp_path, data_mirror, CALL="30", CALL_S="300", SEQUNET_GIT_COMMIT="newer", AB_OLD="older")
    _older_tree_run(tmp_path, env, "generation.py", "generation-ab-head-1-cpu.json")
    names = [(name, commit, r) for r in (1, 2) for name, commit in (("older", "older"), ("head", "newer"))]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["speed_gpu_call.log"] + [f"generation-ab-{name}-{r}-cpu.json" for name, _, r in names])
    for name, commit, r in names:
        found = json.loads((tmp_path / "out" / f"generation-ab-{name}-{r}-cpu.json").read_text())
        assert found["meta"]["git_commit"] == commit
        assert found["meta"]["config"]["profile_steps"] == (1024 if (name, r) == ("head", 1) else 0)
        assert [(row["model"], row["batch"], row["dtype"]) for row in found["rows"]] == [
            (m, b, "bfloat16") for b in (1, 64) for m in ("sequnet", "wavenet")]
    log = (tmp_path / "out" / "speed_gpu_call.log").read_text()
    assert [line.split(":")[0] for line in log.splitlines() if line.startswith("generation at")] == [
        f"generation at {name}, round {r}" for name, _, r in names]


@pytest.mark.dry_run
def test_speed_call_9_times_an_older_tree_beside_this_one(tmp_path, data_mirror):
    """Call 9 as a CPU dry run: the piano steps of both models from an older tree (here this commit's, as
    `git archive` makes it) and from the checkout, alternately, each labelled with its commit, and WaveNet's also
    from the checkout with the matmul precision set first; WaveNet's profiled. Without the older tree it stops
    before running anything, naming what to make."""
    env = _dry_env(tmp_path, data_mirror, CALL="9", CALL_S="300", SEQUNET_GIT_COMMIT="newer", AB_OLD="older")
    _older_tree_run(tmp_path, env, "piano_step.py", "piano-step-ab-wavenet-head-cpu.json")
    sides = {"wavenet": [("older", "older"), ("head", "newer"), ("head-set", "newer")],
             "sequnet": [("older", "older"), ("head", "newer")]}
    for arch, named in sides.items():
        for name, commit in named:
            found = json.loads((tmp_path / "out" / f"piano-step-ab-{arch}-{name}-cpu.json").read_text())
            assert found["meta"]["git_commit"] == commit
            assert [(r["arch"], r["bf16"], r["lookup"], r["cudnn_benchmark"]) for r in found["rows"]] == [
                (arch, True, True, True)]
    # WaveNet's three profiles travel in one file with Inductor's code (none in a dry run, which compiles nothing)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        ["call9-profiles-and-code.tar.gz", "speed_gpu_call.log"]
        + [f"piano-step-ab-{arch}-{name}-cpu.json" for arch, named in sides.items() for name, _ in named])
    listed = subprocess.run(["tar", "tzf", str(tmp_path / "out" / "call9-profiles-and-code.tar.gz")],
                            capture_output=True, text=True, check=True).stdout.split()
    assert sorted(listed) == [f"piano-step-ab-wavenet-{name}-cpu.profile.txt" for name in ("head", "head-set", "older")]


def test_gpu_suite_rest_runs_only_what_a_cut_short_log_did_not_finish(tmp_path):
    """An H100 ran 912 of the suite's 1,009 tests in one 10-minute command (2026-12-05): the second command runs the
    tests the first's log has no outcome for, those that failed or were running when it was interrupted included
    as finished or not as the log says, in pytest's order; an empty rest is an empty file, never the whole suite."""
    from test_benchmarks import benchmark_module

    gpu_test_rest = benchmark_module("gpu_test_rest")
    log = "\n".join([
        "tests/test_a.py::test_one ",                        # -v's line as a worker starts it: no outcome
        "[gw0] PASSED tests/test_a.py::test_one ",
        "[gw1] FAILED tests/test_a.py::test_two[sequnet-28-rowdot] ",
        "[gw2] SKIPPED tests/test_b.py::test_three[a b] ",      # a parametrisation's id may hold a space
        "tests/test_c.py::test_five[1] XFAIL",                 # a serial run's line
        "tests/test_b.py::test_four[wavenet-28-rowdot] ",      # running when the limit struck
    ])
    collected = ["tests/test_a.py::test_one", "tests/test_a.py::test_two[sequnet-28-rowdot]",
                 "tests/test_b.py::test_three[a b]", "tests/test_b.py::test_four[wavenet-28-rowdot]",
                 "tests/test_c.py::test_five[1]", "tests/test_c.py::test_six"]
    assert gpu_test_rest.remaining(collected, log) == ["tests/test_b.py::test_four[wavenet-28-rowdot]",
                                                       "tests/test_c.py::test_six"]
    # the script itself, collecting this file: every test of it but the one the log finished
    earlier, rest = tmp_path / "gpu-test.log", tmp_path / "rest.txt"
    this = "tests/test_device_scripts.py::test_device_prep_refuses_an_unknown_variant_before_removing_the_carry"
    earlier.write_text(f"[gw4] PASSED {this} \n")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_test_rest.py"), str(earlier), str(rest),
                           "tests/test_device_scripts.py"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = rest.read_text().splitlines()
    assert this not in lines and "tests/test_device_scripts.py::" \
        "test_gpu_suite_rest_runs_only_what_a_cut_short_log_did_not_finish" in lines
    assert f"finished in gpu-test.log, {len(lines)} to run" in done.stdout
    earlier.write_text("no outcomes here\n")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_test_rest.py"), str(earlier), str(rest)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "has no test outcomes" in done.stderr
