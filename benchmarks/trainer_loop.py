"""How much of the trainer's epoch is not the training step: both piano models, batches cut between steps or
ahead in a thread (``AudioTask.prefetch``), one process, one device.

Each row trains two epochs of STEPS steps with the trainer itself (``sequnet.experiment.training.train``: on a
GPU bf16, channels-last, the fused gate, CUDA graphs, fused Adam, channels padded) on random mu-law audio of the
piano run's corpus size, and reports the second epoch's time per step (the first holds cuDNN's autotuning, paid
once per run) against the median synchronised step. What is left is the loop's own cost: cutting and copying
batches, the loss check and the checkpoint. (The three eager warm-up steps and the graph capture are paid once
per learning rate since the trainer keeps its graph across epochs, sequnet.experiment.captured.StepPerRate: the
first epoch holds them, and the second, at the same rate, shows what is left.)

    python benchmarks/trainer_loop.py --out results/bench/trainer-loop-h200.json
    python benchmarks/trainer_loop.py --device cpu --quick              # a smoke run on the CPU
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sequnet.analysis.complexity import run_metadata  # noqa: E402
from sequnet.data.audio import AudioCorpus  # noqa: E402
from sequnet.experiment.scales import resolve  # noqa: E402
from sequnet.experiment.tasks import AudioTask  # noqa: E402
from sequnet.experiment.training import train  # noqa: E402
from sequnet.analysis.benchmarks import write_bench  # noqa: E402


def corpus(minutes: float, pieces: int, seed: int = 0) -> AudioCorpus:
    """Random mu-law ids in pieces of equal length: cutting a batch costs the same whatever the samples are."""
    g = torch.Generator().manual_seed(seed)
    n = int(minutes * 60 * 16000 / pieces)
    make = lambda: torch.randint(0, 256, (n,), dtype=torch.uint8, generator=g)   # noqa: E731
    return AudioCorpus(16000, {f"train{i}": make() for i in range(pieces)}, {"test0": make()})


def row(arch: str, scale: str, device: str, steps: int, prefetch: bool, audio: AudioCorpus) -> dict:
    config = resolve("piano_audio", arch, scale, device=device, epochs=2, max_steps_per_epoch=steps,
                     time_budget_s=None, eval_limit=1)
    if config.resolved_device().type == "cuda":
        config = config.replace(bf16=True)
    task = AudioTask(config.setting, audio, config.batch_size, source="random audio")
    task.prefetch = prefetch
    run = train(config, task=task, final_splits=())
    epoch = run.record.history[-1]
    per_step = epoch["epoch_time_s"] / epoch["steps"]
    step = run.record.time_per_step_s
    return {"arch": arch, "prefetch": prefetch, "steps": epoch["steps"], "epoch_time_s": epoch["epoch_time_s"],
            "epoch_per_step_ms": 1000 * per_step, "median_step_ms": 1000 * step,
            "loop_ms_per_step": 1000 * (per_step - step), "loop_share": (per_step - step) / per_step,
            "batch": config.batch_size, "bf16": config.bf16, "device": run.record.device}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=100, help="steps per epoch (the piano run's WaveNet epoch: 100)")
    p.add_argument("--minutes", type=float, default=631.0, help="minutes of random training audio (the run's)")
    p.add_argument("--quick", action="store_true", help="smoke scale models, 6 steps, 2 minutes of audio")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    scale, steps, minutes = ("smoke", 6, 2.0) if a.quick else ("paper", a.steps, a.minutes)
    audio = corpus(minutes, pieces=156 if not a.quick else 4)
    rows = [row(arch, scale, a.device, steps, prefetch, audio)
            for arch in ("sequnet", "wavenet") for prefetch in (False, True)]
    for r in rows:
        print(f"{r['arch']:8s} prefetch={r['prefetch']!s:5s}  epoch {r['epoch_per_step_ms']:8.2f} ms/step  "
              f"step {r['median_step_ms']:8.2f} ms  loop {r['loop_ms_per_step']:7.2f} ms ({r['loop_share']:.0%})")
    if a.out:
        meta = run_metadata(torch.device(a.device)) | {"scale": scale, "steps": steps, "minutes": minutes,
                                                         "git_commit": os.environ.get("SEQUNET_GIT_COMMIT")}
        write_bench(a.out, {"meta": meta, "rows": rows})
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
