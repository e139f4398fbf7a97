"""The fast step's numerics against the plain float32 model (``sequnet.analysis.step_numerics``) on the CPU: the
errors it reports, the settings it restores, and its benchmark script. The paper-scale bounds are GPU tests
(``test_fast_training_cuda.py``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sequnet.analysis.step_numerics import compare, precision

REPO = Path(__file__).resolve().parents[1]


def test_compare_reports_the_relative_errors_it_names():
    g = {"a": torch.tensor([3.0, 4.0], dtype=torch.float64), "b": torch.tensor([0.0, 0.0], dtype=torch.float64),
         "c": torch.tensor([1.0, 0.0], dtype=torch.float64)}
    moved = {"a": g["a"] * 1.01, "b": g["b"], "c": torch.tensor([1.0, 1.0], dtype=torch.float64)}
    e = compare((2.0, g), (2.02, moved))
    assert e["loss_relative_error"] == pytest.approx(0.01)
    # |diff|^2 = 0.05^2 + 1, |g|^2 = 26
    assert e["gradient_relative_error"] == pytest.approx(((0.05 ** 2 + 1) / 26) ** 0.5)
    assert e["worst_parameter"] == "c" and e["worst_parameter_relative_error"] == pytest.approx(1.0)
    assert e["least_cosine_parameter"] == "c" and e["least_cosine"] == pytest.approx(2 ** -0.5)
    with pytest.raises(ValueError, match="different parameters"):
        compare((2.0, g), (2.0, {"a": g["a"]}))


def test_precision_sets_each_mode_and_restores_the_settings():
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    with precision("fp32", "cpu"):
        assert not torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "highest"
        assert not torch.is_autocast_enabled("cpu")
    with precision("bf16", "cpu"):
        assert torch.backends.cudnn.allow_tf32 and torch.get_float32_matmul_precision() == "high"
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert (torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()) == saved
    with pytest.raises(ValueError, match="fp16"):
        with precision("fp16", "cpu"):
            pass


def test_numerics_script_compares_both_ways_of_the_weight_gradients(tmp_path):
    out = tmp_path / "numerics.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_numerics.py"), "--device", "cpu",
                           "--quick", "--archs", "sequnet", "--compile", "off", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["mm_wgrad"], r["mode"]) for r in rows] == [(False, "tf32"), (False, "bf16"), (True, "tf32"),
                                                          (True, "bf16")]
    for r in rows:
        # the CPU has no TF32: float32 against float32 in another layout; bf16 within a few per cent
        bound = 1e-5 if r["mode"] == "tf32" else 1e-1
        assert r["loss_relative_error"] < bound and r["gradient_relative_error"] < bound, r
        assert r["worst_parameter"].startswith("body.")
