"""``sequnet info TASK ARCH``: parameters, receptive field, window lengths and configuration of a paper model."""
from __future__ import annotations

import dataclasses
import json
import sys

from sequnet.core.configs import ARCHS, TASKS, UnknownConfigError, build_model, count_parameters, paper_setting


def describe(task: str, arch: str) -> dict:
    s = paper_setting(task, arch)
    model = build_model(s)
    body = getattr(model, "body", model)
    inp, out = s.input_output
    rf_min, rf_max = s.receptive_field_range
    return {
        "task": task, "arch": arch, "model": type(body).__name__,
        "parameters": count_parameters(model),
        "receptive_field_past_samples": rf_max - 1,
        "receptive_field_min": rf_min, "receptive_field_max": rf_max,
        "input_length": inp, "output_length": out,
        "history": body.history,
        "model_config": dataclasses.asdict(body.config),
        "setting": dataclasses.asdict(s),
    }


def run(args) -> int:
    try:
        info = describe(args.task, args.arch)
    except UnknownConfigError as e:
        print(f"sequnet info: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    window = ("whole sequences (output length = input length)" if info["input_length"] is None
              else f"{info['input_length']} inputs -> {info['output_length']} scored outputs")
    print(f"{args.task} / {args.arch}: {info['model']}")
    print(f"  parameters        {info['parameters']:,}")
    print(f"  receptive field   {info['receptive_field_past_samples']:,} past samples "
          f"(RF {info['receptive_field_min']:,}..{info['receptive_field_max']:,} inputs incl. the current one)")
    print(f"  training window   {window}")
    print(f"  model config      {info['model_config']}")
    s = info["setting"]
    print(f"  training          lr {s['lr']}, clip {s['clip'] or 'off'}, dropout {s['dropout']}, "
          f"batch {s['batch_size']}, epochs {s['epochs']}, LR patience {s['patience']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("info", help="parameters, receptive field and lengths of a paper model",
                       description=f"Tasks: {', '.join(TASKS)}. Archs: sequnet, tcn (wavenet for piano_audio).")
    p.add_argument("task", help=f"one of {', '.join(TASKS)}")
    p.add_argument("arch", help="sequnet, tcn, or wavenet (piano_audio)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
