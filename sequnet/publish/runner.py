"""``sequnet run``: execute every notebook at one scale with papermill (``sequnet book`` then builds the book).

Layout of a run (default ``build/<scale>/``)::

    <out>/<name>.ipynb          the last complete executed notebook (papermill writes under a temporary name,
                                renamed only when the run succeeds: a failing run leaves the previous one in place)
    <out>/<name>.failed.ipynb   what a failed run had executed, with papermill's error marker, for debugging
    <out>/<name>.log            papermill's log: progress, cell outputs, tracebacks (``tail -f`` it on long runs)
    <out>/<name>/               the notebook's ``out_dir``: result records, audio, anything else it writes

With GPUs (``--gpus N``, default: every visible one) independent notebooks run side by side, one per GPU at a
time, each papermill process seeing only its GPU through ``CUDA_VISIBLE_DEVICES``; a notebook that reads
another's output (``AFTER``) starts once that one has ended. Without a GPU they run one after the other.

The kernel's working directory is ``<out>`` and the runner injects ``out_dir = "<name>"``. A path under
``out_dir`` is therefore also a path relative to the executed notebook, so an ``<audio src=...>`` a notebook
writes that way plays in Jupyter and, once ``sequnet book`` has copied ``<out>/<name>/`` beside the page, in the
book (see :func:`sequnet.publish.notebook_view.audio_player`).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

from sequnet.experiment.presets import SCALE_NAMES, SCALES, help_text
from sequnet.publish.notebooks import NOTEBOOKS, NotebookRun, discover, select
from sequnet.publish.paths import REPO


@dataclasses.dataclass(frozen=True)
class Limits:
    cell_s: int       # papermill --execution-timeout: the longest one cell may run
    notebook_s: int   # wall clock for the whole papermill process, kernel start-up included


RESERVED_PARAMETERS = {"scale": "--scale", "out_dir": "--out"}
# Notebooks that read another notebook's output start only after it has ended (when both run).
AFTER = {"listening_test": ("piano_audio",)}
# The papermill processes running now, so that an interrupted parallel run can take them down.
_RUNNING: set[subprocess.Popen] = set()


@dataclasses.dataclass
class Outcome:
    name: str
    status: str          # "ok", "failed" or "timeout"
    wall_s: float
    attempts: int
    detail: str = ""     # for a failure: the failing cell and its error, or the end of papermill's log


def to_ipynb(source: Path, target: Path) -> None:
    """Convert a jupytext notebook to ``target`` and check that it declares ``scale`` in a parameters cell."""
    import jupytext
    import papermill

    nb = jupytext.read(source)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    jupytext.write(nb, target, fmt="ipynb")
    if not any("parameters" in c.metadata.get("tags", []) for c in nb.cells):
        raise ValueError(f"{source}: no cell is tagged 'parameters'; add a code cell with the tag that sets "
                         f"scale = \"demo\" and out_dir = \".\"")
    if "scale" not in papermill.inspect_notebook(str(target)):
        raise ValueError(f"{source}: the 'parameters' cell does not set 'scale'; add scale = \"demo\" to it")


def failing_cell(notebook: Path) -> str | None:
    """The failing cell of a partially executed notebook and its error, as papermill's exception describes them."""
    import warnings

    import nbformat
    from papermill.exceptions import PapermillExecutionError, strip_color
    from papermill.execute import raise_for_execution_errors, remove_error_markers

    try:
        nb = nbformat.read(notebook, as_version=4)
    except (OSError, ValueError):
        return None
    try:
        # Papermill's own search for the error (it knows about SystemExit(0) and cells without an error output);
        # it rewrites the notebook with error markers, which must not go over the notebook we keep.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # "the file is not specified with any extension": os.devnull
            raise_for_execution_errors(remove_error_markers(nb), os.devnull)
    except PapermillExecutionError as e:
        source = "\n".join("    | " + line for line in e.source.splitlines()[:20])
        trace = strip_color("\n".join(e.traceback)).rstrip().splitlines()[-6:]
        return (f"cell In [{e.exec_count}] (cell index {e.cell_index}):\n{source}\n"
                + "\n".join("    " + line for line in trace))
    return None


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that the same clean-up (kill_tree on
    every papermill process and its kernel) runs. A BaseException, so that no ``except Exception`` stops it."""


def _raise_terminated(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second SIGTERM must not interrupt the clean-up
    raise Terminated


def ending_children_on_sigterm(command: Callable) -> Callable:
    """``command`` with SIGTERM handled as Ctrl-C is: papermill runs in its own session (so that Ctrl-C reaches
    only this process), so without this a SIGTERM would end the runner and leave papermill and its kernel
    running. Exits with 143 (128 + SIGTERM) when terminated."""
    @functools.wraps(command)
    def wrapped(args):
        try:
            previous = signal.signal(signal.SIGTERM, _raise_terminated)
        except ValueError:          # not in the main thread, where Python delivers signals: nothing to handle
            return command(args)
        try:
            return command(args)
        except Terminated:
            print("sequnet run: terminated (SIGTERM); papermill and its kernels were ended", file=sys.stderr)
            return 128 + signal.SIGTERM
        finally:
            signal.signal(signal.SIGTERM, previous)
    return wrapped


def kill_tree(proc: subprocess.Popen) -> None:
    """Kill papermill and its kernel: the kernel runs in its own session, so killing the group would miss it."""
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        family = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def papermill_once(ipynb: Path, partial: Path, out: Path, name: str, scale: str, params: list[tuple[str, str]],
                   limits: Limits, log: Path, env: dict[str, str] | None = None) -> str:
    """One papermill process under the outer timeout; returns "ok", "failed" or "timeout"."""
    cmd = [sys.executable, "-m", "papermill", str(ipynb), str(partial), "--kernel", "python3",
           "--cwd", str(out), "--execution-timeout", str(limits.cell_s), "--log-output", "--no-progress-bar",
           "-p", "scale", scale, "-p", "out_dir", name]
    for key, value in params:
        cmd += ["-p", key, value]
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        _RUNNING.add(proc)
        try:
            rc = proc.wait(timeout=limits.notebook_s)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
            f.write(f"\n*** sequnet run: killed after {limits.notebook_s} s (outer timeout)\n")
            return "timeout"
        except BaseException:
            # Ctrl-C reaches only this process (papermill runs in its own session): take the kernel down with us.
            kill_tree(proc)
            raise
        finally:
            _RUNNING.discard(proc)
    if rc == 0:
        return "ok"
    # nbclient raises CellTimeoutError past --execution-timeout; papermill lets it through without marking a cell.
    return "timeout" if "CellTimeoutError" in log.read_text(errors="replace") else "failed"


def run_notebook(source: Path, out: Path, scale: str, params: list[tuple[str, str]], limits: Limits,
                 env: dict[str, str] | None = None, name: str | None = None) -> Outcome:
    """Execute one notebook into ``out`` as ``name`` (default: the notebook's; papermill in ``env``, default this
    process's environment); retries once after a timeout (papermill hangs now and then)."""
    name = name or source.stem
    final, failed, log = out / f"{name}.ipynb", out / f"{name}.failed.ipynb", out / f"{name}.log"
    # Papermill saves after every cell; it writes into a side folder so that <out>/*.ipynb only ever holds
    # complete notebooks (os.replace within one file system is atomic).
    partial = out / ".running" / f"{name}.ipynb"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.unlink(missing_ok=True)
    (out / name).mkdir(parents=True, exist_ok=True)
    log.write_text("")
    start, attempt, detail = time.monotonic(), 0, None
    with tempfile.TemporaryDirectory(prefix=f"sequnet-{name}-") as tmp:
        ipynb = Path(tmp) / f"{name}.ipynb"
        try:
            to_ipynb(source, ipynb)
        except Exception as e:   # a malformed notebook fails alone, like a failing cell
            status, detail = "failed", f"    {type(e).__name__}: {e}"
        else:
            for attempt in (1, 2):
                status = papermill_once(ipynb, partial, out, name, scale, params, limits, log, env)
                if status != "timeout":
                    break
    wall = time.monotonic() - start
    if status == "ok":
        os.replace(partial, final)
        failed.unlink(missing_ok=True)
        return Outcome(name, status, wall, attempt)
    # The last good executed copy stays: it says when it ran (its banner in the book), and a failed re-run must
    # not take a working chapter away; the failure is kept beside it as <name>.failed.ipynb.
    if partial.exists():
        os.replace(partial, failed)
        detail = detail or failing_cell(failed)
    if status == "timeout":
        detail = f"    timed out twice (cell limit {limits.cell_s} s, notebook limit {limits.notebook_s} s)"
    return Outcome(name, status, wall, attempt, detail or f"    papermill failed; end of {log}:\n{log_tail(log)}")


def summary(outcomes: list[Outcome], out: Path) -> str:
    width = max([len("notebook")] + [len(o.name) for o in outcomes])
    rows = [f"{'notebook':<{width}}  {'status':<8}  {'wall time':>10}  attempts"]
    for o in outcomes:
        rows.append(f"{o.name:<{width}}  {o.status:<8}  {o.wall_s:>8.1f} s  {o.attempts}")
    for o in outcomes:
        if o.status != "ok":
            kept = [str(p) for p in (out / f"{o.name}.failed.ipynb", out / f"{o.name}.log") if p.exists()]
            rows.append(f"\n{o.name}: {o.status} ({', '.join(kept)})\n{o.detail}")
            if (out / f"{o.name}.ipynb").exists():
                rows.append(f"    {out / f'{o.name}.ipynb'} is still the last run that succeeded")
    return "\n".join(rows)


def gpu_ids(count: int) -> list[str]:
    """The first ``count`` GPUs a child process can be given: ids from ``CUDA_VISIBLE_DEVICES`` when it is set
    (the user's selection stays in force), else 0, 1, ..."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [g.strip() for g in visible.split(",") if g.strip()] if visible is not None else \
        [str(i) for i in range(count)]
    if count > len(ids):
        raise ValueError(f"--gpus {count}: only {len(ids)} GPU(s) visible (CUDA_VISIBLE_DEVICES={visible})")
    return ids[:count]


def spread(sources: list[Path], run_one: Callable[[Path, str], Outcome], gpus: list[str],
           done: Callable[[Outcome, str], None] | None = None) -> list[Outcome]:
    """Run ``run_one(source, gpu)`` for every notebook, at most one per GPU at a time, in order as GPUs free up
    (a notebook waits for those it reads, ``AFTER``); ``done`` hears of each as it ends. Outcomes in input order."""
    pending, running, outcomes, free = list(sources), {}, {}, list(gpus)
    with ThreadPoolExecutor(max_workers=len(gpus)) as pool:
        try:
            while pending or running:
                unfinished = {s.stem for s in pending} | {s.stem for s, _ in running.values()}
                for source in [s for s in pending if not set(AFTER.get(s.stem, ())) & unfinished]:
                    if not free:
                        break
                    gpu = free.pop(0)
                    pending.remove(source)
                    running[pool.submit(run_one, source, gpu)] = (source, gpu)
                if not running:
                    raise RuntimeError(f"notebooks wait for each other in a circle: {[s.stem for s in pending]}")
                for future in wait(running, return_when=FIRST_COMPLETED)[0]:
                    source, gpu = running.pop(future)
                    free.append(gpu)
                    outcomes[source.stem] = future.result()
                    if done:
                        done(outcomes[source.stem], gpu)
        except BaseException:
            # Ctrl-C reaches only this thread, and papermill runs in its own session: take the kernels down.
            for proc in list(_RUNNING):
                kill_tree(proc)
            raise
    return [outcomes[s.stem] for s in sources]


def _gpus(requested: int | None) -> list[str]:
    import torch

    available = torch.cuda.device_count()
    if requested is not None and requested < 0:
        raise ValueError(f"--gpus {requested}: expected a number of GPUs (0: one notebook after the other)")
    if requested is not None and requested > available:
        raise ValueError(f"--gpus {requested}: only {available} GPU(s) visible")
    return gpu_ids(available if requested is None else requested)


def usage_error(message: str) -> int:
    print(f"sequnet: error: {message}", file=sys.stderr)
    return 2


def run(args) -> int:
    from tqdm import tqdm

    available = discover(args.notebooks)
    if not available:
        return usage_error(f"no notebooks (*.md) in {args.notebooks}")
    try:
        selected = select(available, args.only)
    except ValueError as e:
        return usage_error(str(e))
    reserved = [k for k, _ in args.parameter or [] if k in RESERVED_PARAMETERS]
    if reserved:
        return usage_error(f"-p {reserved[0]} is set by the runner; use {RESERVED_PARAMETERS[reserved[0]]}")
    per_run = sorted({k for k, _ in args.parameter or []} & {k for r in selected for k, _ in r.params})
    if per_run:
        return usage_error(f"-p {per_run[0]} is set per run by the runner (RUNS); pick runs with --only "
                           + ", ".join(r.name for r in selected if r.params))
    out = Path(args.out or REPO / "build" / args.scale).resolve()
    out.mkdir(parents=True, exist_ok=True)
    limits = Limits(args.cell_timeout or SCALES[args.scale].cell_s, args.timeout or SCALES[args.scale].notebook_s)
    try:
        gpus = _gpus(args.gpus)
    except ValueError as e:
        return usage_error(str(e))

    print(f"sequnet run: {len(selected)} notebook(s) at scale {args.scale!r} into {out} "
          f"(logs: {out}/<name>.log)" + (f", one per GPU on GPU(s) {', '.join(gpus)}" if gpus else ""), flush=True)
    outcomes = []
    bar = tqdm(selected, desc=f"notebooks ({args.scale})", unit="nb")
    if gpus:
        def on_gpu(nb: NotebookRun, gpu: str) -> Outcome:
            env = os.environ | {"CUDA_VISIBLE_DEVICES": gpu}
            return run_notebook(nb.source, out, args.scale, [*nb.params, *(args.parameter or [])], limits, env,
                                nb.name)

        def done(outcome: Outcome, gpu: str) -> None:
            bar.write(f"  {outcome.name}: {outcome.status} in {outcome.wall_s:.1f} s (GPU {gpu})")
            bar.update()

        outcomes = spread(selected, on_gpu, gpus, done)
    else:
        for nb in bar:
            bar.set_postfix_str(nb.name)
            outcome = run_notebook(nb.source, out, args.scale, [*nb.params, *(args.parameter or [])], limits,
                                   name=nb.name)
            bar.write(f"  {outcome.name}: {outcome.status} in {outcome.wall_s:.1f} s")
            outcomes.append(outcome)
    bar.close()
    print(summary(outcomes, out))
    return 0 if all(o.status == "ok" for o in outcomes) else 1


def register(sub) -> None:
    p = sub.add_parser("run", help="execute the notebooks with papermill at one scale",
                       description="Execute notebooks/*.md with papermill at one scale; executed notebooks go to "
                                   "OUT/<name>.ipynb, their files to OUT/<name>/. Exit code 0 only if all passed.")
    p.add_argument("--scale", choices=SCALE_NAMES, default="demo", help=help_text())
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only these notebooks (names without .md; language runs as char_ptb and word_ptb)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: build/<scale>)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="set a notebook parameter in every notebook (papermill -p; numbers and True/False are typed)")
    p.add_argument("--cell-timeout", type=int, metavar="S", help="seconds one cell may run (default by scale: "
                   + ", ".join(f"{s.name} {s.cell_s}" for s in SCALES.values()) + ")")
    p.add_argument("--timeout", type=int, metavar="S", help="seconds one notebook may run (default by scale: "
                   + ", ".join(f"{s.name} {s.notebook_s}" for s in SCALES.values()) + ")")
    p.add_argument("--gpus", type=int, metavar="N",
                   help="run notebooks side by side, one per GPU, on the first N visible GPUs (default: all "
                        "visible; 0 or no GPU: one after the other)")
    p.add_argument("--notebooks", type=Path, default=NOTEBOOKS, metavar="DIR",
                   help="folder of the MyST notebooks (default: notebooks/ of this repository)")
    p.set_defaults(func=ending_children_on_sigterm(run))
