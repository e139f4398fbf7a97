"""The library's figure helpers at the size the book shows them: every text at least 9 pt, every numeric axis
labelled with its unit, and no CPU times beside the paper's GPU times (issue 19)."""
from __future__ import annotations

import json

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sequnet.analysis import benchmarks, figures, generation_checks, overview, reports, sweeps  # noqa: E402
from sequnet.experiment.records import ResultRecord  # noqa: E402
from sequnet.publish.paths import RESULTS  # noqa: E402


def record(model: str, device: str = "cpu", memory=None, **kw) -> ResultRecord:
    history = [{"epoch": e, "train": 9.0 - e, "valid": 9.5 - e} for e in (1, 2, 3)]
    fields = dict(experiment="jsb", model=model, scale="demo", metric="nll",
                  metrics={"train": 6.0, "valid": 8.0, "test": 8.2}, params=1000, receptive_field=12,
                  time_per_step_s=0.004, peak_memory_mib=memory, device=device, wall_time_s=1.0, history=history,
                  date="2026-01-01T00:00:00+00:00", git_commit="abc1234", host="h")
    return ResultRecord(**(fields | kw))


CPU = [record("tcn"), record("sequnet")]
GPU = [record("tcn", "NVIDIA H200", 80.0, scale="paper"), record("sequnet", "NVIDIA H200", 18.0, scale="paper")]


def helpers():
    bench = json.loads((RESULTS / "bench" / "generation-h200.json").read_text())
    return {
        "learning curves": lambda: reports.plot_learning_curves(CPU),
        "costs, CPU": lambda: reports.plot_costs(CPU),
        "costs, GPU": lambda: reports.plot_costs(GPU),
        "activations": lambda: overview.plot_activations(points=4)[0],
        "generation benchmark": lambda: benchmarks.plot_generation(bench),
        "generation benchmark, bf16 only": lambda: benchmarks.plot_generation(
            json.loads((RESULTS / "bench" / "generation-chunk-h200.json").read_text())),
        "closed forms": lambda: sweeps.plot_closed_forms(),
        "committed sweep": lambda: sweeps.plot_sweeps(
            benchmarks.load_bench(RESULTS / "bench", "complexity*.json", full_only=True)[0][1], "GPU"),
        "levels per step": lambda: generation_checks.plot_levels_per_step({}),
        "update grid": lambda: generation_checks.plot_update_grid(11, 64),
    }


@pytest.mark.parametrize("name", list(helpers()))
def test_figure_text_reads_at_9_pt_and_every_numeric_axis_has_a_unit(name):
    fig = helpers()[name]()
    try:
        assert fig.get_figwidth() <= figures.MAX_WIDTH_IN + 1e-9
        assert figures.problems(fig) == []
    finally:
        plt.close(fig)


def test_a_generation_file_without_float32_plots_its_own_dtype():
    fig = helpers()["generation benchmark, bf16 only"]()
    try:
        ax = fig.axes[0]
        assert "bfloat16" in ax.get_title() and len(ax.get_yticks()) == 12
    finally:
        plt.close(fig)


def test_the_check_finds_small_text_and_unlabelled_axes():
    fig, ax = plt.subplots(figsize=(11, 3))
    ax.plot([1, 2, 3], [4, 5, 6], label="x")
    ax.legend(fontsize=8)
    ax.set_xlabel("epoch")
    found = figures.problems(fig)
    plt.close(fig)
    assert any("'x': 8 pt in a 11 in figure" in p for p in found), found
    assert any("the y axis has numbers and no label" in p for p in found), found
    assert not any("the x axis" in p for p in found), found
    # 10 pt in an 11-inch figure shrinks to 800/1056 of itself: 7.6 pt on the page.
    assert 10 * figures.rendered_scale(11) == pytest.approx(7.58, abs=0.01)
    assert figures.rendered_scale(6.4) > 1


def test_cpu_times_never_stand_beside_the_papers_gpu_times():
    fig = reports.plot_costs(CPU)
    time_axis = fig.axes[0]
    assert "CPU" in time_axis.get_ylabel()
    assert [t.get_text() for t in time_axis.get_legend().get_texts()] == ["ours (cpu)"]
    assert len(fig.axes) == 2, "no memory panel without a measured peak"
    plt.close(fig)
    fig = reports.plot_costs(GPU)
    assert "GPU" in fig.axes[0].get_ylabel() and len(fig.axes) == 3
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["ours (H200)", "paper (GTX 1080)"]
    plt.close(fig)
