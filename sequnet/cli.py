"""The ``sequnet`` command (also ``python -m sequnet``).

Each sub-command lives in the module that does the work; that module exposes ``register(subparsers)``, which
adds its parser and sets ``func`` (a function taking the parsed arguments and returning an exit code).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute sub-commands, in the order they appear in --help.
COMMAND_MODULES = [
    "sequnet.publish.info",
    "sequnet.data.cli",
    "sequnet.experiment.cli",
    "sequnet.publish.runner",
    "sequnet.publish.book",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sequnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
