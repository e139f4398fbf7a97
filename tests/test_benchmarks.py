"""The training-step benchmark runs end to end on the CPU (shapes and output only; no timing assertions)."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "training.py"


def test_training_benchmark_writes_both_models_of_a_pair(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--tasks", "jsb", "--steps", "1",
                    "--warmup", "1", "--out", str(out)], check=True, capture_output=True, text=True, timeout=300)
    bench = json.loads(out.read_text())
    rows = {(r["task"], r["arch"]): r for r in bench["rows"]}
    assert set(rows) == {("jsb", "tcn"), ("jsb", "sequnet")}
    assert rows["jsb", "sequnet"]["time_ratio"] > 0 and rows["jsb", "tcn"]["params"] > 0
    assert bench["meta"]["quick"] is True


def test_training_benchmark_profile_names_the_operators(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--tasks", "jsb", "--profile", "1",
                    "--out", str(out)], check=True, capture_output=True, text=True, timeout=300)
    report = out.with_suffix(".profile.txt").read_text()
    assert "## jsb / tcn" in report and "## jsb / sequnet" in report and "aten::" in report
