"""``sequnet train TASK ARCH``, ``sequnet hpo TASK ARCH`` and ``sequnet generate CHECKPOINT``.

``train`` writes ``<out>/records/<name>.json`` and a checkpoint after every epoch (``<out>/checkpoints/<name>.pt``),
the name being ``<task>_<arch>``, or ``<task>_<arch>_seed<N>`` with ``--seed N`` other than the default 1111 (so
that the seeds of one model train side by side in one folder); ``--resume`` continues from it. A run whose record or checkpoint exists
is refused unless ``--resume`` or ``--overwrite`` is given, and so is a run whose files another training is
writing. Exit status: 0 finished, 1 diverged or failed, 3 stopped early by ``--time-limit`` (run the same command
with ``--resume`` to go on), 2 bad arguments or refused before training (an existing or busy run, an unreadable
checkpoint, a batch larger than the data).

``--nproc N`` trains data-parallel in N processes on this machine (DDP; one GPU each, or gloo on the CPU),
started through torchrun's module; ``--batch-size`` is then per process (effective batch N times it; music: N
sequences per step) and the learning rate is used as given. A checkpoint resumes with another N (language: keep
N x batch). See sequnet.experiment.distributed for the exact semantics.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sequnet.data.registry import DataError
from sequnet.experiment.presets import SCALE_NAMES
from sequnet.experiment.scales import TRAINABLE_TASKS, resolve

EXIT = {"ok": 0, "diverged": 1, "interrupted": 3}


def _overrides(args: argparse.Namespace) -> dict:
    clip = None if args.clip is None else (0.0 if args.clip.lower() == "off" else _number("--clip", args.clip))
    return dict(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, clip=clip, device=args.device,
                seed=args.seed, max_steps_per_epoch=args.max_steps_per_epoch, eval_limit=args.eval_limit,
                bf16=True if args.bf16 else None, cpu_threads=args.cpu_threads, cuda_graphs=args.cuda_graphs,
                fast_kernels=args.fast_kernels, compile=args.compile)


def _number(flag: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{flag}={text!r}: expected a number or 'off'") from None


def _fail(command: str, error: Exception, code: int) -> int:
    print(f"sequnet {command}: error: {error}", file=sys.stderr)
    return code


def run_train(args: argparse.Namespace) -> int:
    from sequnet.experiment import distributed

    try:
        config = resolve(args.task, args.arch, args.scale, **_overrides(args))
    except ValueError as e:
        return _fail("train", e, 2)
    if args.nproc < 1:
        return _fail("train", ValueError(f"--nproc={args.nproc}: expected a positive number of processes"), 2)
    if args.nproc > 1 and not distributed.launched():
        return _launch(args, config)
    code = _train_here(args, config)
    status_file = os.environ.get(STATUS_FILE)
    if status_file and distributed.launched():
        # Under our launcher every rank exits 0 and rank 0 leaves its exit status here: torchrun would report
        # a status such as 3 (stopped early, resumable) as a crash of the job and stop the other ranks.
        if int(os.environ.get("RANK", "0")) == 0:
            Path(status_file).write_text(str(code))
        return 0
    return code


# Rank 0 of a job started by --nproc writes its exit status to the file this variable names.
STATUS_FILE = "SEQUNET_TRAIN_STATUS_FILE"
# Options passed on to the processes as they were given (every option of `train` except --nproc).
_VALUE_OPTIONS = ("scale", "epochs", "batch_size", "device", "seed", "max_steps_per_epoch", "eval_limit",
                  "cpu_threads", "out", "lr", "clip", "checkpoint", "time_limit")
_OTHER_DESTS = {"command", "func", "task", "arch", "bf16", "cuda_graphs", "fast_kernels", "compile", "resume",
                "overwrite", "progress", "nproc", "note"}


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The `train` command line each process runs, rebuilt from the parsed arguments."""
    unknown = set(vars(args)) - set(_VALUE_OPTIONS) - _OTHER_DESTS
    if unknown:   # a new option must be passed on here too, or the processes would silently train without it
        raise RuntimeError(f"--nproc does not pass on option(s) {', '.join(sorted(unknown))}: add them to "
                           "sequnet.experiment.cli._VALUE_OPTIONS")
    argv = ["train", args.task, args.arch]
    for dest in _VALUE_OPTIONS:
        if getattr(args, dest) is not None:
            argv += [f"--{dest.replace('_', '-')}", str(getattr(args, dest))]
    if args.bf16:
        argv.append("--bf16")
    for dest in ("cuda_graphs", "fast_kernels", "compile"):
        if getattr(args, dest) is not None:
            flag = dest.replace("_", "-")
            argv.append(f"--{flag}" if getattr(args, dest) else f"--no-{flag}")
    if args.resume is not None:
        argv += ["--resume"] + ([] if args.resume == "auto" else [args.resume])
    if args.overwrite:
        argv.append("--overwrite")
    if args.progress is not None:
        argv.append("--progress" if args.progress else "--no-progress")
    for note in args.note or ():
        argv += ["--note", note]
    return argv


def _launch(args: argparse.Namespace, config) -> int:
    """Run `train` in ``args.nproc`` processes through torchrun's module; return rank 0's exit status."""
    import torch

    from sequnet.experiment import distributed

    device = config.resolved_device()
    if device.type == "cuda" and args.nproc > torch.cuda.device_count():
        return _fail("train", ValueError(f"--nproc={args.nproc}: only {torch.cuda.device_count()} GPU(s) visible; "
                                         "one process per GPU (or --device cpu)"), 2)
    command = distributed.torchrun_command(args.nproc, ["-m", "sequnet.experiment.cli", *_worker_argv(args)])
    with tempfile.TemporaryDirectory(prefix="sequnet-train-") as tmp:
        env = distributed.launch_env(args.nproc) | {STATUS_FILE: str(Path(tmp) / "status")}
        print("launching: " + " ".join(command), flush=True)
        rc = subprocess.run(command, env=env, stdin=subprocess.DEVNULL).returncode
        status = Path(env[STATUS_FILE])
        if rc == 0 and status.is_file():
            return int(status.read_text())
    print(f"sequnet train: the {args.nproc} processes failed (torchrun exit status {rc}); their errors are above",
          file=sys.stderr)
    return 1


def _train_here(args: argparse.Namespace, config) -> int:
    from sequnet.experiment.training import train

    out = Path(args.out or Path("runs") / args.scale)
    checkpoint = Path(args.checkpoint) if args.checkpoint else out / "checkpoints" / f"{config.name}.pt"
    resume = False if args.resume is None else (True if args.resume == "auto" else args.resume)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        run = train(config, out_dir=out, checkpoint=checkpoint, resume=resume, overwrite=args.overwrite,
                    progress=progress, log=print, time_limit_s=args.time_limit, notes=args.note or ())
    except (ValueError, FileNotFoundError) as e:
        return _fail("train", e, 2)
    except DataError as e:
        return _fail("train", e, 1)
    if int(os.environ.get("RANK", "0")) != 0:       # only rank 0 writes: rank 0 reports
        return EXIT.get(run.record.status, 1)
    r = run.record
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in r.metrics.items() if v is not None)
    print(f"{config.name} ({r.scale}): {r.status}; {r.metric}: {metrics or 'none'}")
    if run.record_path:
        print(f"record: {run.record_path}")
    else:
        print("record: none (no epoch trained)" if not r.history else
              f"record: not written ({out / 'records'} keeps the finished run's, which an early stop does not replace)")
    print(f"checkpoint: {run.checkpoint_path}" if run.checkpoint_path else "checkpoint: none (no epoch trained)")
    if r.status == "interrupted" and run.checkpoint_path is None:
        print(f"stopped before its first epoch ({r.notes}); run the same command with a longer --time-limit",
              file=sys.stderr)
    elif r.status == "interrupted":
        again = "--resume in place of --overwrite" if args.overwrite else "plus --resume"
        print(f"stopped early ({r.notes}); continue with the same command {again}", file=sys.stderr)
    return EXIT.get(r.status, 1)


def run_hpo(args: argparse.Namespace) -> int:
    from sequnet.experiment.hpo import search, search_name, summary

    overrides = _overrides(args)
    overrides.pop("lr"), overrides.pop("clip")
    try:
        result = search(args.task, args.arch, args.scale, args.trials, search_seed=args.search_seed,
                        out_dir=args.out, time_limit_s=args.time_limit, notes=args.note or (), **overrides)
    except ValueError as e:
        return _fail("hpo", e, 2)
    except (RuntimeError, DataError) as e:
        return _fail("hpo", e, 1)
    clip = "off" if result.clip is None else f"{result.clip:.4f}"
    done = len(result.trials.trials)
    print(f"best of {done} trials: lr {result.lr:.6g}, clip {clip}, validation loss {result.best_valid_loss:.4f} nats")
    if args.out:
        path = Path(args.out) / f"{search_name(args.task, args.arch, args.scale)}.json"
        data = summary(result, args.task, args.arch, args.scale, args.trials, args.search_seed, **overrides)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, path)
        print(f"trials: {path}" + (f" ({data['notes']})" if data["notes"] else ""))
    if not result.complete:
        print(f"stopped after {done} of {args.trials} trials (--time-limit); run the same command again to go on",
              file=sys.stderr)
        return 3
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from sequnet.experiment.checkpoints import CheckpointError
    from sequnet.experiment.sampling import sample

    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        s = sample(args.checkpoint, length=args.length, temperature=args.temperature, greedy=args.greedy,
                   seed=args.seed, batch=args.batch, prime=args.prime, prime_length=args.prime_length,
                   device=args.device, out=args.out, overwrite=args.overwrite, progress=progress,
                   cpu_threads=args.cpu_threads)
    except (CheckpointError, ValueError) as e:
        return _fail("generate", e, 2)
    except DataError as e:
        return _fail("generate", e, 1)
    how = "greedy" if s.temperature is None else f"temperature {s.temperature:g}"
    print(f"{s.task}_{s.arch}: {s.ids.shape[0]} x {s.ids.shape[-1] - s.prime_length} generated after a prime of "
          f"{s.prime_length} ({how}, seed {args.seed}), {s.samples_per_s:,.0f} samples/s", file=sys.stderr)
    for i, source in enumerate(s.prime_source):
        print(f"prime {i + 1}: {source}", file=sys.stderr)
    if s.files:
        print("\n".join(f"wrote {path}" for path in s.files), file=sys.stderr)
    elif isinstance(s.decoded[0], str):       # the prime, then » and the generated text
        for prime, cont in zip(s.prime_decoded, s.continuation):
            print(f"{prime}»{cont}" if len(s.decoded) == 1 else f"{prime}»{cont}\n")
    else:
        print("nothing written: give --out FILE (.mid for music, .flac for audio)", file=sys.stderr)
    return 0


def _register_generate(subparsers) -> None:
    g = subparsers.add_parser("generate", help="continue a prime with a trained model: text, MIDI or FLAC",
                              description="Continue a prime with the model of a training checkpoint (task and "
                                          "architecture are read from it): text for char/word PTB, a MIDI file "
                                          "for the music tasks, a 16 kHz FLAC for piano audio.",
                              epilog="Exit status: 0 written, 2 bad arguments or an unusable checkpoint, 1 missing "
                                     "data. Without --prime, primes come from the task's test data.")
    g.add_argument("checkpoint", help="a checkpoint written by `sequnet train` (<out>/checkpoints/TASK_ARCH.pt)")
    g.add_argument("--length", type=int, metavar="N",
                   help="elements to generate: characters, words, frames (eighth notes) or 16 kHz samples "
                        "(default 300, 60, 64, 16000)")
    g.add_argument("--temperature", type=float, default=1.0, metavar="T", help="divides the logits (default 1)")
    g.add_argument("--greedy", action="store_true", help="take the most likely element (music: keys above 1/2)")
    g.add_argument("--seed", type=int, default=0, help="seeds the sampling and the test-set primes (default 0)")
    g.add_argument("--batch", type=int, default=1, metavar="B", help="sequences generated side by side")
    g.add_argument("--prime", metavar="FILE", help="continue this file: UTF-8 text, a MIDI file or audio (resampled "
                                                    "to 16 kHz); default: test-set excerpts")
    g.add_argument("--prime-length", type=int, metavar="N",
                   help="elements of the prime: its last N (a file), or the test excerpts' length")
    g.add_argument("--device", default="auto", metavar="D", help="auto (default), cpu, cuda, cuda:N")
    g.add_argument("--out", metavar="FILE", help="file to write (FILE-1, FILE-2, ... for --batch > 1); text is "
                                                  "printed without it")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--cpu-threads", type=int, metavar="N", help="torch threads on the CPU (default: torch's)")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar with samples/s (default: when stderr is a terminal)")
    g.set_defaults(func=run_generate)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help=f"one of {', '.join(TRAINABLE_TASKS)}")
    parser.add_argument("arch", help="tcn or sequnet")
    parser.add_argument("--scale", default="demo", choices=SCALE_NAMES,
                        help="smoke (seconds), demo (minutes on a CPU), paper (Table 3, 100 epochs; a GPU)")
    parser.add_argument("--epochs", type=int, metavar="N")
    parser.add_argument("--batch-size", type=int, metavar="N", help="training streams (language tasks)")
    parser.add_argument("--device", metavar="D", help="auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="seed of every random draw (default 1111; another seed adds _seedN to the file names)")
    parser.add_argument("--max-steps-per-epoch", type=int, metavar="N")
    parser.add_argument("--eval-limit", type=int, metavar="N", help="windows/sequences evaluated per split")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast for training steps")
    parser.add_argument("--cpu-threads", type=int, metavar="N", help="torch threads on the CPU")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                        help="on a GPU, replay fixed-shape training steps from one CUDA graph (default: on)")
    parser.add_argument("--fast-kernels", action=argparse.BooleanOptionalAction, default=None,
                        help="on a GPU, the audio models run channels-last with the fused gate (default: on)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the model and its loss for training steps (default: off; compiling takes a "
                             "minute or more on a GPU, and Inductor then fuses the gate and the loss itself, its "
                             "kernels launched with programmatic dependent launch, and independent ones combined, "
                             "on an H100 or newer)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: runs/<scale>)")
    parser.add_argument("--note", action="append", metavar="TEXT",
                        help="a note for the record(s) (repeatable), e.g. that the run shared its GPU with others")


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one model on one task, with checkpoints and a result record",
                              description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1])
    _common(p)
    p.add_argument("--lr", type=float, help="initial learning rate (default: the scale's)")
    p.add_argument("--clip", metavar="NORM", help="gradient-norm clipping, or 'off'")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue from CKPT, or (without a value) from the run's checkpoint if it exists")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run's record and checkpoint if they exist (without it, or --resume, an "
                        "existing run is refused)")
    p.add_argument("--checkpoint", metavar="FILE", help="checkpoint path (default: <out>/checkpoints/...)")
    p.add_argument("--time-limit", type=float, metavar="S",
                   help="stop (resumably) before an epoch that would end after S seconds")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="one tqdm bar over the run's steps, each epoch's summary as its postfix, in place of one "
                        "line per epoch (default: when stderr is a terminal)")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel processes on this machine (DDP via torchrun; one per GPU, or gloo on the "
                        "CPU); --batch-size is per process; default 1")
    p.set_defaults(func=run_train)

    h = subparsers.add_parser("hpo", help="hyperopt TPE search over learning rate and clipping",
                              description="TPE over lr ~ loguniform(-12, -2) and clipping (off or U(0.01, 1)); "
                                          "each trial is a training run at --scale (with --epochs N, a changed "
                                          "preset that the records and the summary name). With --out, every "
                                          "trial writes its record and the search resumes where it stopped.")
    _common(h)
    h.add_argument("--trials", type=int, default=20, metavar="N", help="number of trials (default 20)")
    h.add_argument("--search-seed", type=int, default=0, metavar="N", help="seed of the TPE sampler")
    h.add_argument("--time-limit", type=float, metavar="S",
                   help="stop (exit 3) before a trial that would end after S seconds; with --out, the same command "
                        "again resumes the search")
    h.set_defaults(func=run_hpo, lr=None, clip=None)
    _register_generate(subparsers)


def main(argv: list[str] | None = None) -> int:
    """``python -m sequnet.experiment.cli train|hpo ...``: the same commands without loading the other sub-commands'
    modules (so it runs where their optional dependencies, e.g. soundfile, are not installed)."""
    parser = argparse.ArgumentParser(prog="python -m sequnet.experiment.cli")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
