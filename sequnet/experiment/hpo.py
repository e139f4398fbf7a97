"""The paper's hyper-parameter search: hyperopt's TPE over the learning rate and optional gradient clipping.

Space (as the official scripts): lr ~ loguniform(-12, -2), i.e. exp(U(-12, -2)) in [6.1e-6, 0.135]; clipping off
or a norm ~ U(0.01, 1), each with probability 1/2 (``hp.choice``). Each trial is a whole training run at the
chosen scale; the objective is its best validation loss (nats per scored item). A trial that diverges counts as
a failure (``STATUS_FAIL``), as in the official scripts. The paper ran 20 trials (50 for JSB) of 100 epochs each
before retraining with the best; Table 3's values, already in ``sequnet.core.configs``, are that search's result.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import numpy as np
from hyperopt import STATUS_FAIL, STATUS_OK, Trials, fmin, hp, space_eval, tpe

from sequnet.experiment.scales import resolve
from sequnet.experiment.tasks import make_task
from sequnet.experiment.training import train

SPACE = {
    "lr": hp.loguniform("lr", -12, -2),
    "clip": hp.choice("clip_on", [None, hp.uniform("clip", 0.01, 1.0)]),
}


@dataclasses.dataclass
class SearchResult:
    lr: float
    clip: float | None
    best_valid_loss: float
    trials: Trials

    def table(self) -> list[dict[str, Any]]:
        """One row per trial: its lr, clip, status and validation loss (None for failures)."""
        rows = []
        for t in self.trials.trials:
            values = {k: v[0] for k, v in t["misc"]["vals"].items() if v}
            params = space_eval(SPACE, values)
            rows.append({"lr": params["lr"], "clip": params["clip"], "status": t["result"]["status"],
                         "valid_loss": t["result"].get("loss"), "note": t["result"].get("note", "")})
        return rows


def search(task: str, arch: str, scale: str = "smoke", trials: int = 20, *, search_seed: int = 0,
           log: Callable[[str], None] | None = print, **overrides: Any) -> SearchResult:
    """Run ``trials`` TPE trials of ``task``/``arch`` at ``scale`` (plus ``overrides``); return the best
    (lr, clip) and the hyperopt ``Trials``. ``search_seed`` seeds the TPE sampler (``seed``, an override, the
    training runs). Raises RuntimeError when every trial failed."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials={trials!r}: expected a positive integer")
    for fixed in ("lr", "clip"):
        if overrides.get(fixed) is not None:
            raise ValueError(f"{fixed} is what the search chooses; do not pass it as an override")
    base = resolve(task, arch, scale, **overrides)
    data = make_task(base.task, base.setting, base.batch_size)   # loaded once, shared by every trial

    def objective(params: dict[str, Any]) -> dict[str, Any]:
        config = base.replace(lr=float(params["lr"]), clip=params["clip"])
        run = train(config, task=data, final_splits=(), log=None)
        ok = run.record.status == "ok" and math.isfinite(run.best_valid_loss)
        if log:
            clip = "off" if config.clip is None else f"{config.clip:.3f}"
            log(f"trial lr={config.lr:.3g} clip={clip}: "
                + (f"best valid loss {run.best_valid_loss:.4f}" if ok else f"failed ({run.record.notes})"))
        if not ok:
            return {"status": STATUS_FAIL, "note": run.record.notes}
        return {"status": STATUS_OK, "loss": run.best_valid_loss}

    history = Trials()
    fmin(objective, SPACE, algo=tpe.suggest, max_evals=trials, trials=history,
         rstate=np.random.default_rng(search_seed), show_progressbar=False, return_argmin=False)
    if not any(t["result"]["status"] == STATUS_OK for t in history.trials):
        raise RuntimeError(f"all {trials} trials of {task}/{arch} failed (diverged)")
    best = space_eval(SPACE, history.argmin)
    return SearchResult(lr=float(best["lr"]), clip=best["clip"], best_valid_loss=min(history.losses(),
                        key=lambda v: math.inf if v is None else v), trials=history)
