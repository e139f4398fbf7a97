"""A run's files are safe: no silent overwrite, one training per run at a time, verified checkpoints, and inputs
that cannot train (too large a batch, fewer epochs than the checkpoint has) refused before any step."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from sequnet.experiment.checkpoints import CheckpointError, RunFolderError, load_checkpoint
from sequnet.experiment.records import ResultRecord
from sequnet.experiment.scales import resolve
from sequnet.experiment.training import train

REPO = Path(__file__).resolve().parents[1]


def jsb(**overrides):
    return resolve("jsb", "tcn", "smoke", **(dict(epochs=2, max_steps_per_epoch=2, eval_limit=2) | overrides))


def cli(*args: str) -> tuple[int, str, str]:
    """``sequnet train`` in this process: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from sequnet.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["train", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_root) -> Path:
    """An out folder holding a finished 2-epoch run of jsb/tcn (record and checkpoint), to copy from."""
    out = tmp_path_factory.mktemp("finished")
    train(jsb(), out_dir=out, checkpoint=out / "checkpoints" / "jsb_tcn.pt", log=None)
    return out


def copy_of(finished: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    return out, out / "records" / "jsb_tcn.json", out / "checkpoints" / "jsb_tcn.pt"


# --- no silent overwrite ----------------------------------------------------------------------------------------------

def test_a_finished_run_is_neither_replaced_nor_retrained_without_resume_or_overwrite(finished, tmp_path):
    out, record, checkpoint = copy_of(finished, tmp_path)
    before = record.read_bytes(), checkpoint.read_bytes()
    code, _, err = cli("jsb", "tcn", "--scale", "smoke", "--epochs", "2", "--max-steps-per-epoch", "2",
                       "--eval-limit", "2", "--out", str(out))
    assert code == 2 and "exists already" in err and "--resume" in err and "--overwrite" in err
    # a time limit that stops at once is no way round it either
    code, _, err = cli("jsb", "tcn", "--scale", "smoke", "--time-limit", "2", "--out", str(out))
    assert code == 2 and "exists already" in err
    assert (record.read_bytes(), checkpoint.read_bytes()) == before
    with pytest.raises(RunFolderError, match="jsb_tcn exists already"):
        train(jsb(), out_dir=out, checkpoint=checkpoint, log=None)
    assert (record.read_bytes(), checkpoint.read_bytes()) == before
    # overwrite replaces it (a new record); resume and overwrite together are refused
    run = train(jsb(lr=0.005), out_dir=out, checkpoint=checkpoint, overwrite=True, log=None)
    assert run.record_path == record and ResultRecord.load(record).config["lr"] == 0.005
    with pytest.raises(ValueError, match="exclude each other"):
        train(jsb(), out_dir=out, checkpoint=checkpoint, overwrite=True, resume=True, log=None)


def test_an_early_stop_never_replaces_a_finished_record(finished, tmp_path):
    out, record, checkpoint = copy_of(finished, tmp_path)
    before = record.read_bytes()
    code, stdout, _ = cli("jsb", "tcn", "--scale", "smoke", "--lr", "0.005", "--out", str(out), "--overwrite",
                          "--time-limit", "0.000001")
    assert code == 3 and record.read_bytes() == before and ResultRecord.load(record).status == "ok"
    assert "record: none (no epoch trained)" in stdout
    # after an epoch, too: resuming the finished run for more epochs and stopping after one more keeps its record
    state = load_checkpoint(checkpoint)["state"]
    part = train(jsb(epochs=4), out_dir=out, checkpoint=checkpoint, resume=True, stop_after_epoch=3, log=None)
    assert part.record.status == "interrupted" and part.record_path is None and record.read_bytes() == before
    assert load_checkpoint(part.checkpoint_path)["state"]["epoch"] == state["epoch"] + 1 == 3
    # every path the command prints exists
    printed = [line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith(("record: ", "checkpoint: "))]
    assert printed and all(Path(p).exists() for p in printed if not p.startswith(("not written", "none")))


def test_a_run_stopped_before_its_first_epoch_leaves_no_record(tmp_path, data_root):
    code, stdout, err = cli("jsb", "tcn", "--scale", "smoke", "--out", str(tmp_path), "--time-limit", "0.000001")
    assert code == 3 and "record: none" in stdout and "longer --time-limit" in err
    assert not (tmp_path / "records" / "jsb_tcn.json").exists()
    # so the same command with a longer limit is not refused as an existing run
    code, _, err = cli("jsb", "tcn", "--scale", "smoke", "--out", str(tmp_path), "--time-limit", "600")
    assert code == 0, err


def test_a_second_training_of_the_same_run_fails_at_once_naming_the_holder(tmp_path, data_root):
    command = [sys.executable, "-m", "sequnet", "train", "jsb", "tcn", "--scale", "smoke", "--max-steps-per-epoch",
               "1", "--eval-limit", "1", "--out", str(tmp_path)]
    first = subprocess.Popen(command + ["--epochs", "1000"], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "checkpoints" / "jsb_tcn.pt").exists():
            assert first.poll() is None and time.monotonic() < deadline, "the first training did not start"
            time.sleep(0.2)
        second = subprocess.run(command + ["--epochs", "1000", "--resume"], cwd=REPO, capture_output=True,
                                text=True, timeout=120)
        assert first.poll() is None, "the first training ended before the second was tried"
        assert second.returncode == 2, second.stdout + second.stderr
        assert str(tmp_path) in second.stderr and f"pid {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The kernel dropped the killed holder's lock: the run resumes (and stops at once under a tiny time limit).
    third = subprocess.run(command + ["--epochs", "1000", "--resume", "--time-limit", "0.000001"], cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert third.returncode == 3, third.stdout + third.stderr


# --- verified checkpoints ----------------------------------------------------------------------------------------------

def flip_a_byte_in_a_tensor(path: Path) -> None:
    """Flip one bit in the middle of the largest tensor's bytes (the zip member's data, not its header)."""
    with zipfile.ZipFile(path) as archive:
        member = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(data[member.header_offset + 26:member.header_offset + 28], "little"), \
        int.from_bytes(data[member.header_offset + 28:member.header_offset + 30], "little")
    data[member.header_offset + 30 + name_len + extra_len + member.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


def damage(kind: str, path: Path) -> None:
    if kind == "flipped byte":
        flip_a_byte_in_a_tensor(path)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign torch file":             # a pickled object, not a state dict of tensors
        path.unlink()
        torch.save(torch.nn.Linear(2, 2), path)
    elif kind == "state dict only":
        path.unlink()
        torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    elif kind == "text":
        path.write_text("hello\n")
    elif kind == "directory":
        path.unlink()
        path.mkdir()


DAMAGES = ["flipped byte", "truncated", "empty", "foreign torch file", "state dict only", "text", "directory"]


@pytest.mark.parametrize("kind", DAMAGES)
def test_an_unreadable_checkpoint_is_refused_before_training(kind, finished, tmp_path):
    out, record, checkpoint = copy_of(finished, tmp_path)
    damage(kind, checkpoint)
    with pytest.raises(CheckpointError, match=f"^unreadable checkpoint {checkpoint}: "):
        load_checkpoint(checkpoint)
    lines = []
    with pytest.raises(CheckpointError):
        train(jsb(epochs=3), out_dir=out, checkpoint=checkpoint, resume=True, log=lines.append)
    assert lines == []                                     # no epoch ran


@pytest.mark.parametrize("kind", ["flipped byte", "truncated", "directory"])
def test_the_cli_says_unreadable_checkpoint_and_exits_2(kind, finished, tmp_path):
    out, record, checkpoint = copy_of(finished, tmp_path)
    damage(kind, checkpoint)
    before = record.read_bytes()
    code, stdout, err = cli("jsb", "tcn", "--scale", "smoke", "--epochs", "3", "--max-steps-per-epoch", "2",
                            "--eval-limit", "2", "--out", str(out), "--resume")
    assert code == 2 and err.startswith(f"sequnet train: error: unreadable checkpoint {checkpoint}: ")
    assert "Traceback" not in err and "epoch" not in stdout and record.read_bytes() == before


def test_resume_refuses_fewer_epochs_than_the_checkpoint_has(finished, tmp_path):
    out, record, checkpoint = copy_of(finished, tmp_path)
    before = record.read_bytes()
    with pytest.raises(ValueError, match="epochs=1: the checkpoint .* has trained 2 epochs already"):
        train(jsb(epochs=1), out_dir=out, checkpoint=checkpoint, resume=True, log=None)
    code, _, err = cli("jsb", "tcn", "--scale", "smoke", "--epochs", "1", "--max-steps-per-epoch", "2",
                       "--eval-limit", "2", "--out", str(tmp_path / "elsewhere"), "--resume", str(checkpoint))
    assert code == 2 and "epochs=1" in err and record.read_bytes() == before
    assert not (tmp_path / "elsewhere" / "records" / "jsb_tcn.json").exists()


def test_a_checkpoint_written_while_crc32_is_switched_off_still_loads(finished, tmp_path):
    # The integrity check reads the zip archive's CRC-32s, so saving must write them whatever the global setting.
    config = getattr(torch.utils, "serialization", None)
    if config is None or not hasattr(config.config.save, "compute_crc32"):
        pytest.skip("this torch has no switch for the CRC-32s")
    config.config.save.compute_crc32 = False
    try:
        run = train(jsb(epochs=1), checkpoint=tmp_path / "c.pt", log=None)
    finally:
        config.config.save.compute_crc32 = True
    assert load_checkpoint(run.checkpoint_path)["state"]["epoch"] == 1


# --- a batch larger than the data -------------------------------------------------------------------------------------

def test_a_batch_larger_than_the_data_is_refused_before_any_epoch(tmp_path, data_root):
    config = resolve("char_ptb", "tcn", "smoke", batch_size=200000, epochs=2)
    lines = []
    with pytest.raises(ValueError, match=r"batch_size=200000 is larger than char_ptb's training data.*"
                                         r"200,000 streams leave \d+ tokens per stream.*at most [\d,]+ streams fit"):
        train(config, out_dir=tmp_path, checkpoint=tmp_path / "c.pt", log=lines.append)
    assert lines == [] and not (tmp_path / "c.pt").exists() and not (tmp_path / "records" / "char_ptb_tcn.json").exists()


# --- kill -9 ----------------------------------------------------------------------------------------------------------

def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_weights(tmp_path, data_root):
    # Dropout and the shuffled order depend on the random states in the checkpoint; the kill lands anywhere (in a
    # step, an evaluation or a checkpoint write), and the atomic write leaves the last complete epoch to resume.
    flags = ["--scale", "smoke", "--epochs", "60", "--max-steps-per-epoch", "2", "--eval-limit", "2",
             "--cpu-threads", "1", "--device", "cpu", "--out", str(tmp_path / "killed")]
    command = [sys.executable, "-m", "sequnet", "train", "jsb", "sequnet", *flags]
    checkpoint = tmp_path / "killed" / "checkpoints" / "jsb_sequnet.pt"
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() or load_checkpoint(checkpoint)["state"]["epoch"] < 3:
            assert first.poll() is None and time.monotonic() < deadline, "the run ended before it was killed"
            time.sleep(0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = load_checkpoint(checkpoint)["state"]["epoch"]
    assert killed_at < 60
    resumed = subprocess.run(command + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"after epoch {killed_at}" in resumed.stdout

    config = resolve("jsb", "sequnet", "smoke", epochs=60, max_steps_per_epoch=2, eval_limit=2, cpu_threads=1,
                     device="cpu")
    whole = train(config, checkpoint=tmp_path / "whole.pt", log=None)
    after_kill = load_checkpoint(checkpoint)
    for name, weights in load_checkpoint(tmp_path / "whole.pt")["model"].items():
        assert torch.equal(weights, after_kill["model"][name]), name
    record = ResultRecord.load(tmp_path / "killed" / "records" / "jsb_sequnet.json")
    assert record.metrics == whole.record.metrics and len(record.history) == 60
