"""The notebooks are thin drivers: one parameter check, few code lines, and the runner's per-task runs."""
import re
from pathlib import Path

import pytest
import torch

from sequnet.analysis.notebook_params import check_parameters
from sequnet.publish import notebooks, runner

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
MAX_CODE_LINES = 60


def code_lines(path: Path) -> int:
    """Lines inside ```{code-cell} blocks (the cell options between --- lines included); a cell's short-form
    options (``:tags: [...]`` and the blank line after them) are metadata, not code, and are not counted."""
    count, inside, head = 0, False, False
    for line in path.read_text().splitlines():
        if line.startswith("```{code-cell}"):
            inside = head = True
        elif inside and line.startswith("```"):
            inside = False
        elif inside and head and (line.startswith(":") or not line.strip()):
            continue
        elif inside:
            count += 1
            head = False
    return count


def test_check_parameters_accepts_good_values_and_creates_out_dir(tmp_path):
    p = check_parameters("smoke", str(tmp_path / "a" / "b"), "cpu", task="word_ptb", tasks=("char_ptb", "word_ptb"),
                         progress=True, seed=3, audio_dir=tmp_path, checkpoints=tmp_path / "ck")
    assert p.out == tmp_path / "a" / "b" and p.out.is_dir()
    assert p.device == torch.device("cpu") and p.task == "word_ptb" and p.scale == "smoke"
    assert check_parameters("demo", tmp_path).device is None


@pytest.mark.parametrize("kwargs, named", [
    (dict(scale="papr"), "scale='papr'"),
    (dict(out_dir=""), "out_dir=''"),
    (dict(out_dir=3), "out_dir=3"),
    (dict(device="gpu"), "device='gpu'"),
    (dict(task="penn", tasks=("char_ptb", "word_ptb")), "task='penn'"),
    (dict(progress="yes"), "progress='yes'"),
    (dict(seed=-1), "seed=-1"),
    (dict(seed=True), "seed=True"),
    (dict(audio_dir="/no/such/folder"), "audio_dir='/no/such/folder'"),
    (dict(checkpoints=""), "checkpoints=''"),
    (dict(scale="paper", device="cpu", paper_needs_gpu="the sweep is too large"), "the sweep is too large"),
    (dict(optional_folders={"items_dir": None, "responses_dir": 7}), "responses_dir=7"),
])
def test_check_parameters_names_the_bad_one(tmp_path, kwargs, named):
    args = dict(scale="smoke", out_dir=str(tmp_path / "out")) | kwargs
    with pytest.raises(ValueError) as e:
        check_parameters(**args)
    assert named in str(e.value)
    assert not (tmp_path / "out").exists(), "nothing is created before every parameter passed"


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.md")))
def test_notebook_is_a_thin_driver(name):
    path = NOTEBOOKS / f"{name}.md"
    assert code_lines(path) <= MAX_CODE_LINES, f"{path}: move code into sequnet.analysis"
    text = path.read_text()
    assert "check_parameters(" in text, f"{path}: check the parameters with sequnet.analysis.notebook_params"
    assert not re.search(r"^def |^class ", text, re.M), f"{path}: functions belong in the library"


def test_language_notebook_runs_once_per_task_under_the_old_names():
    runs = notebooks.discover(NOTEBOOKS)
    assert "language" not in runs and "char_ptb" in runs and "word_ptb" in runs
    assert runs["char_ptb"].source == runs["word_ptb"].source == NOTEBOOKS / "language.md"
    assert runs["char_ptb"].params == (("task", "char_ptb"),) and runs["word_ptb"].params == (("task", "word_ptb"),)
    assert list(runs).index("char_ptb") < list(runs).index("word_ptb") < list(runs).index("music")
    assert [r.name for r in notebooks.select(runs, ["word_ptb"])] == ["word_ptb"]
    assert [r.name for r in notebooks.select(runs, ["language", "models"])] == ["models", "char_ptb", "word_ptb"]
    assert runs["models"].params == ()
    with pytest.raises(ValueError, match="unknown notebook char"):
        notebooks.select(runs, ["char"])


def test_runner_passes_each_run_its_name_and_parameters(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(runner, "run_notebook", lambda source, out, scale, params, limits, env=None, name=None:
                        seen.append((source.name, name, params)) or runner.Outcome(name, "ok", 0.0, 1))
    monkeypatch.setattr(runner, "_gpus", lambda requested: [])
    import argparse

    parser = argparse.ArgumentParser()
    runner.register(parser.add_subparsers())
    args = parser.parse_args(["run", "--scale", "smoke", "--only", "word_ptb", "--out", str(tmp_path),
                              "-p", "epochs", "1"])
    assert args.func(args) == 0
    assert [(source, name, [tuple(p) for p in params]) for source, name, params in seen] == \
        [("language.md", "word_ptb", [("task", "word_ptb"), ("epochs", "1")])]
    args = parser.parse_args(["run", "--only", "char_ptb", "--out", str(tmp_path), "-p", "task", "word_ptb"])
    assert args.func(args) == 2, "a -p that a run sets itself is refused"


def test_piano_excerpts_write_each_file_once_whole(tmp_path):
    import soundfile

    from sequnet.analysis import piano

    primes = torch.randint(0, 256, (3, 40))
    generated = {"sequnet": torch.randint(0, 256, (3, 100)), "wavenet": torch.randint(0, 256, (3, 100))}
    shown = piano.listening_excerpts(tmp_path, primes, generated, 60, 16000, ["a", "b", "c"])
    assert [title for title, _ in shown] == ["**Excerpt 1** (a)", "**Excerpt 2** (b)", "**Excerpt 3** (c)"]
    assert [caption for _, caption in shown[0][1]] == ["real piano (prime)", "prime + Seq-U-Net", "prime + WaveNet"]
    lengths = [soundfile.info(path).frames for path, _ in shown[2][1]]
    assert lengths == [40, 60, 60]                 # the prime whole, each continuation cut to the item length
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"item{i:02d}_{who}.flac" for i in (1, 2, 3) for who in ("prime", "sequnet", "wavenet"))
