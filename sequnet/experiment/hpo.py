"""The paper's hyper-parameter search: hyperopt's TPE over the learning rate and optional gradient clipping.

Space (as the official scripts): lr ~ loguniform(-12, -2), i.e. exp(U(-12, -2)) in [6.1e-6, 0.135]; clipping off
or a norm ~ U(0.01, 1), each with probability 1/2 (``hp.choice``). Each trial is a whole training run at the
chosen scale; the objective is its best validation loss (nats per scored item). A trial that diverges counts as
a failure (``STATUS_FAIL``), as in the official scripts. The paper ran 20 trials (50 for JSB) of 100 epochs each
before retraining with the best; Table 3's values, already in ``sequnet.core.configs``, are that search's result.
hyperopt's TPE draws its first 20 points at random (``n_startup_jobs``), so a search of 20 trials is a random
search, in the paper as here.

At reduced cost (issue 20: do the seeds explain the Nottingham and MuseData Seq-U-Net gaps?), the same procedure
runs at paper scale with fewer epochs per trial (``benchmarks/table1_hpo.sh``), e.g.
``python -m sequnet hpo nottingham sequnet --scale paper --epochs 10 --trials 20 --out DIR``: every trial's record
(``DIR/hpo_<task>_<arch>_<scale>/trial-NNN/records/``) and the summary (``DIR/hpo_<task>_<arch>_<scale>.json``) say "paper preset changed: epochs=10, lr=..., clip=...",
so none is taken for a reproduction. The best (lr, clip) is then retrained with the full 100 epochs
(``sequnet train ... --scale paper --lr LR --clip CLIP``), whose record names those two changes.

With ``out_dir`` the search is resumable: the hyperopt trials are saved (pickled, written to a temporary name and
renamed) after every trial, and a search started again with the same configuration continues after the last
finished trial. Trial i draws from a generator seeded by (``search_seed``, i), so a resumed search suggests what
the uninterrupted one would have. ``time_limit_s`` stops before a trial that would end after the limit (judged by
the last trial's duration); every call runs at least one trial.
"""
from __future__ import annotations

import dataclasses
import math
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, hp, space_eval, tpe
from hyperopt.exceptions import AllTrialsFailed

from sequnet.experiment.scales import deviations, resolve
from sequnet.experiment.tasks import make_task
from sequnet.experiment.training import train

SPACE = {
    "lr": hp.loguniform("lr", -12, -2),
    "clip": hp.choice("clip_on", [None, hp.uniform("clip", 0.01, 1.0)]),
}
SPACE_TEXT = "lr ~ exp(U(-12, -2)); clip: off or U(0.01, 1.0), each with probability 1/2"


@dataclasses.dataclass
class SearchResult:
    lr: float
    clip: float | None
    best_valid_loss: float
    trials: Trials
    complete: bool = True               # False: stopped early by the time limit (run it again to go on)

    def table(self) -> list[dict[str, Any]]:
        """One row per trial: its lr, clip, status and validation loss (None for failures)."""
        rows = []
        for t in self.trials.trials:
            values = {k: v[0] for k, v in t["misc"]["vals"].items() if v}
            params = space_eval(SPACE, values)
            rows.append({"lr": params["lr"], "clip": params["clip"], "status": t["result"]["status"],
                         "valid_loss": t["result"].get("loss"), "note": t["result"].get("note", "")})
        return rows


def search_name(task: str, arch: str, scale: str) -> str:
    return f"hpo_{task}_{arch}_{scale}"


def _load(path: Path, identity: dict[str, Any]) -> Trials:
    """The trials saved by an earlier call of the same search, or none."""
    if not path.is_file():
        return Trials()
    try:
        saved = pickle.loads(path.read_bytes())
        trials, before = saved["trials"], saved["identity"]
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not the saved trials of a search ({type(e).__name__}: {e}); remove it to start "
                         "the search afresh") from e
    if before != identity:
        changed = sorted(k for k in identity.keys() | before.keys() if before.get(k) != identity.get(k))
        raise ValueError(f"{path} holds the trials of another search (it differs in {', '.join(changed)}); use "
                         "another --out, or remove the file to start afresh")
    return trials


def _save(path: Path, trials: Trials, identity: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump({"identity": identity, "trials": trials}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def search(task: str, arch: str, scale: str = "smoke", trials: int = 20, *, search_seed: int = 0,
           log: Callable[[str], None] | None = print, out_dir: str | os.PathLike | None = None,
           time_limit_s: float | None = None, notes: Sequence[str] = (), **overrides: Any) -> SearchResult:
    """Run ``trials`` TPE trials of ``task``/``arch`` at ``scale`` (plus ``overrides``); return the best
    (lr, clip) and the hyperopt ``Trials``. ``search_seed`` seeds the TPE sampler (``seed``, an override, the
    training runs). With ``out_dir`` each trial writes its record (``notes`` added to its own) and the search
    resumes (module doc). Raises
    RuntimeError when every trial failed."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials={trials!r}: expected a positive integer")
    for fixed in ("lr", "clip"):
        if overrides.get(fixed) is not None:
            raise ValueError(f"{fixed} is what the search chooses; do not pass it as an override")
    base = resolve(task, arch, scale, **overrides)
    folder = None if out_dir is None else Path(out_dir) / search_name(base.task, arch, scale)
    # what makes two calls one search (where it runs and how steps are timed may differ; lr and clip are chosen)
    ignore = ("lr", "clip", "device", "cpu_threads", "warmup_steps", "cuda_graphs", "fast_kernels",
              "compile")
    identity = {k: v for k, v in base.to_dict().items() if k not in ignore} | {"search_seed": search_seed}
    history = Trials() if folder is None else _load(folder / "trials.pkl", identity)
    data = make_task(base.task, base.setting, base.batch_size)   # loaded once, shared by every trial
    note = (f"trial {{}} of a TPE search over {SPACE_TEXT} (search seed {search_seed}), objective the best "
            "validation loss")

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        index = len(history.trials)                     # this trial's number, from 1
        config = base.replace(lr=float(params["lr"]), clip=params["clip"])
        trial_dir = None if folder is None else folder / f"trial-{index:03d}"
        # overwrite: a trial whose record was written but whose result was not saved runs again, identically
        run = train(config, task=data, final_splits=(), out_dir=trial_dir, overwrite=True,
                    notes=[note.format(index), *notes])
        ok = run.record.status == "ok" and math.isfinite(run.best_valid_loss)
        if log:
            clip = "off" if config.clip is None else f"{config.clip:.3f}"
            log(f"trial {index} lr={config.lr:.3g} clip={clip}: "
                + (f"best valid loss {run.best_valid_loss:.4f}" if ok else f"failed ({run.record.notes})"))
        if not ok:
            return {"status": STATUS_FAIL, "note": run.record.notes}
        return {"status": STATUS_OK, "loss": run.best_valid_loss}

    start, last = time.perf_counter(), 0.0
    complete = True
    while len(history.trials) < trials:
        if time_limit_s is not None and last and time.perf_counter() - start + last > time_limit_s:
            complete = False
            break
        began = time.perf_counter()
        try:
            fmin(objective, SPACE, algo=tpe.suggest, max_evals=len(history.trials) + 1, trials=history,
                 rstate=np.random.default_rng([search_seed, len(history.trials)]), show_progressbar=False,
                 return_argmin=False)
        except AllTrialsFailed:       # fmin looks up the best so far after the trial, which is recorded already
            pass
        last = time.perf_counter() - began
        if folder is not None:
            _save(folder / "trials.pkl", history, identity)
    if not any(t["result"]["status"] == STATUS_OK for t in history.trials):
        raise RuntimeError(f"all {len(history.trials)} trials of {task}/{arch} so far failed (diverged)")
    best = space_eval(SPACE, history.argmin)
    return SearchResult(lr=float(best["lr"]), clip=best["clip"], best_valid_loss=min(history.losses(),
                        key=lambda v: math.inf if v is None else v), trials=history, complete=complete)


def summary(result: SearchResult, task: str, arch: str, scale: str, trials: int, search_seed: int,
            **overrides: Any) -> dict[str, Any]:
    """What the ``hpo`` command writes: the best values, every trial, and what of the preset the search changed
    (besides lr and clip, which it chooses)."""
    base = resolve(task, arch, scale, **overrides)
    changed = {k: v for k, v in deviations(base).items() if k not in ("lr", "clip")}
    what = ", ".join(f"{k}={v}" for k, v in changed.items())
    return {"task": base.task, "arch": arch, "scale": scale, "seed": base.seed, "search_seed": search_seed,
            "space": SPACE_TEXT, "objective": "best validation loss per trial (nats per scored item)",
            "deviations": changed, "notes": f"{scale} preset changed: {what}" if what else "",
            "complete": result.complete, "trials_planned": trials, "lr": result.lr, "clip": result.clip,
            "best_valid_loss": result.best_valid_loss, "trials": result.table()}
