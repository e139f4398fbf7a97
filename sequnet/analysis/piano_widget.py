"""The piano chapter's generation widget: pick a prime (real piano from the test pieces), a model and a
temperature, press *Generate*, and listen to the continuation.

It needs a live Jupyter kernel (ipywidgets call back into Python); in the static book its controls are drawn but
do nothing. The models are the run's checkpoints (:func:`sequnet.experiment.piano_run.trained_models`), which are
not committed (hundreds of MB): the widget is built from a run folder that has them, i.e. on the machine that
trained them or after copying ``checkpoints/`` there; :func:`from_run` says so when they are missing.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from sequnet.core.configs import ARCH_LABELS
from sequnet.core.generation import generate
from sequnet.data.audio import mu_law_decode
from sequnet.experiment.piano_data import load_generation
from sequnet.experiment.piano_run import trained_models


class GenerationWidget:
    """Controls (prime, model, temperature, length), a *Generate* button and an audio player for the result.
    ``models``: arch -> model; ``primes``: (n, T) mu-law ids; ``sources``: where each prime is from."""

    def __init__(self, models: Mapping[str, torch.nn.Module], primes, sources: list[str], sr: int, *,
                 seconds: float = 2.0, max_seconds: float = 10.0, seed: int = 0):
        import ipywidgets as w

        if not models:
            raise ValueError("models is empty: give at least one trained model (arch -> model)")
        self.models, self.sr, self.seed = dict(models), sr, seed
        self.primes = torch.as_tensor(np.asarray(primes)).long()
        if self.primes.ndim != 2 or len(self.primes) != len(sources):
            raise ValueError(f"primes must be (n, T) ids with one source each; got shape {tuple(self.primes.shape)} "
                             f"and {len(sources)} sources")
        self.prime = w.Dropdown(options=[(s, i) for i, s in enumerate(sources)], description="prime")
        self.model = w.ToggleButtons(options=[(ARCH_LABELS.get(a, a), a) for a in self.models], description="model")
        self.temperature = w.FloatSlider(value=0.95, min=0.5, max=1.5, step=0.05, description="temperature")
        self.seconds = w.FloatSlider(value=min(seconds, max_seconds), min=0.05, max=max_seconds, step=0.05,
                                     description="seconds")
        self.button = w.Button(description="Generate", button_style="primary")
        self.status = w.Label()
        self.output = w.Output()
        self.last: np.ndarray | None = None            # the last prime + continuation, float samples
        self.button.on_click(lambda _: self.show())
        self.box = w.VBox([self.prime, self.model, self.temperature, self.seconds,
                           w.HBox([self.button, self.status]), self.output])

    def generate(self) -> np.ndarray:
        """Continue the chosen prime with the chosen model and temperature; prime + continuation as samples."""
        model = self.models[self.model.value].eval()
        dev = next(model.parameters()).device
        prime = self.primes[self.prime.value:self.prime.value + 1].to(dev)
        n = max(1, round(self.seconds.value * self.sr))
        ids = generate(model, prime, n, temperature=self.temperature.value, progress=False,
                       generator=torch.Generator(dev).manual_seed(self.seed), cuda_graphs=dev.type == "cuda")
        self.last = mu_law_decode(ids[0].cpu()).numpy()
        return self.last

    def show(self) -> None:
        """What *Generate* does: generate, then replace the player."""
        from IPython.display import Audio, display

        self.status.value = "generating..."
        start = time.perf_counter()
        samples = self.generate()
        self.status.value = (f"{ARCH_LABELS.get(self.model.value, self.model.value)}, temperature "
                             f"{self.temperature.value:.2f}: {self.seconds.value:g} s in "
                             f"{time.perf_counter() - start:.1f} s")
        self.output.clear_output(wait=True)
        with self.output:
            display(Audio(samples, rate=self.sr, normalize=False))

    def _ipython_display_(self):
        from IPython.display import display

        display(self.box)


def from_run(run_dir: str | os.PathLike, device: str = "auto", *, name: str = "long",
             seconds: float = 2.0) -> GenerationWidget | str:
    """The widget on a piano run's final models, with the primes of its ``name`` generation set; a sentence
    saying what is missing when the run folder has no checkpoints."""
    checkpoints = Path(run_dir) / "checkpoints"
    if not all((checkpoints / f"piano_audio_{a}.pt").is_file() for a in ("sequnet", "wavenet")):
        return ("The generation widget needs the trained models, whose checkpoints are not part of the book. Run "
                "this notebook in Jupyter on a machine with the run's `checkpoints/` folder (or train a run with "
                "`python -m sequnet.experiment.piano_run`), then pick a prime, a model and a temperature and press "
                "*Generate*.")
    ids, meta = load_generation(run_dir, name)
    models = trained_models(run_dir, device)
    return GenerationWidget({a: models[a] for a in ("sequnet", "wavenet")}, ids["real"][:, :meta["prime_len"]],
                            meta["sources"], meta["sr"], seconds=seconds, seed=meta["seed"])
