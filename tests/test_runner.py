"""``sequnet run``: what stays behind when a notebook fails, and what is left running when the runner is ended."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sequnet.publish import runner
from test_book import NOTEBOOK          # a notebook with a parameters cell and one code cell ``body``

REPO = Path(__file__).resolve().parents[1]


def test_a_failing_run_keeps_the_last_good_executed_notebook(tmp_path, monkeypatch):
    source, out = tmp_path / "nb.md", tmp_path / "out"
    source.write_text(NOTEBOOK.format(title="A notebook", body="print(scale)"))
    out.mkdir()
    (out / "nb.ipynb").write_text("the last good run")
    result = {"status": "failed"}

    def papermill_once(ipynb, partial, *args, **kw):      # papermill, without starting a kernel
        shutil.copy(ipynb, partial)
        return result["status"]

    monkeypatch.setattr(runner, "papermill_once", papermill_once)
    limits = runner.Limits(cell_s=10, notebook_s=10)
    failed = runner.run_notebook(source, out, "smoke", [], limits)
    assert failed.status == "failed"
    assert (out / "nb.ipynb").read_text() == "the last good run" and (out / "nb.failed.ipynb").is_file()
    assert "is still the last run that succeeded" in runner.summary([failed], out)
    result["status"] = "ok"                                  # a run that succeeds replaces it
    assert runner.run_notebook(source, out, "smoke", [], limits).status == "ok"
    assert '"cells"' in (out / "nb.ipynb").read_text() and not (out / "nb.failed.ipynb").exists()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_sigterm_ends_papermill_and_its_kernel(tmp_path):
    pids = tmp_path / "pids"
    body = (f"import os, time\nopen({str(pids)!r} + '.tmp', 'w').write(f'{{os.getpid()}} {{os.getppid()}}')\n"
            f"os.replace({str(pids)!r} + '.tmp', {str(pids)!r})\ntime.sleep(300)")
    (tmp_path / "sleeper.md").write_text(NOTEBOOK.format(title="A notebook", body=body))
    cmd = [sys.executable, "-m", "sequnet", "run", "--scale", "smoke", "--gpus", "0", "--notebooks", str(tmp_path),
           "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
                                                                                     os.environ.get("PYTHONPATH")]))})
    kernel = papermill = None
    try:
        deadline = time.monotonic() + 180
        while not pids.exists():
            assert proc.poll() is None, f"the runner ended before the kernel started:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "the kernel did not start within 180 s"
            time.sleep(0.2)
        kernel, papermill = map(int, pids.read_text().split())
        assert alive(kernel) and alive(papermill)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM, proc.stdout.read()
        assert not alive(kernel), "the kernel outlived the runner"
        assert not alive(papermill), "papermill outlived the runner"
    finally:
        for pid in (kernel, papermill, proc.pid):     # a failed test leaves nothing running
            if pid and alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
