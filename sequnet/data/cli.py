"""``sequnet data fetch | verify | render-piano``."""
from __future__ import annotations

import argparse
import sys

from sequnet.data import audio, registry


def _fetch(args: argparse.Namespace) -> int:
    paths = registry.fetch(args.names, root=args.root, mirror=args.mirror)
    print(f"{len(paths)} file(s) verified under {registry.data_root(args.root)}")
    return 0


_VERIFY_FIXES = {
    registry.NOT_FETCHED: "get them with `python -m sequnet data fetch --mirror DIR` (DIR = a copy of shared/data) "
                          "or, with internet, `python -m sequnet data fetch`",
    registry.CORRUPT: "`python -m sequnet data fetch` replaces them with verified copies",
    registry.UNREADABLE: "see the detail column: make them readable, or move away what sits in their place, then "
                         "run `python -m sequnet data fetch`",
}


def _verify(args: argparse.Namespace) -> int:
    """The table of every registered file, always; then a line per kind of problem, saying how to fix it."""
    rows = registry.verify(root=args.root)
    print(f"data root: {registry.data_root(args.root)}")
    print(registry.format_status(rows))
    bad = [r for r in rows if r.status != registry.OK]
    for status, fix in _VERIFY_FIXES.items():
        count = sum(r.status == status for r in bad)
        if count:
            print(f"{count} file(s) {status}: {fix}.", file=sys.stderr)
    return 1 if bad else 0


def _render(args: argparse.Namespace) -> int:
    done = audio.render_piano(args.out, args.midi_zip, limit=args.limit, pieces=args.pieces,
                              test_fraction=args.test_fraction, soundfont=args.soundfont, root=args.root,
                              mirror=args.mirror)
    print(f"rendered {len(done)} piece(s)")
    return 0


def _reporting_errors(func):
    """Turn a DataError into its message on stderr and exit code 1: it already says what to do."""
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except registry.DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return run


def register(subparsers) -> None:
    root = argparse.ArgumentParser(add_help=False)
    root.add_argument("--root", metavar="DIR", help=f"data root (default: ${registry.ENV_ROOT} or <project>/data)")
    mirror = argparse.ArgumentParser(add_help=False)
    mirror.add_argument("--mirror", metavar="DIR",
                       help=f"copy missing files from this directory instead of downloading "
                            f"(default: ${registry.ENV_MIRROR})")

    data = subparsers.add_parser("data", help="fetch, verify and render the datasets")
    data.set_defaults(func=lambda _args: data.print_help() or 2)
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")

    fetch = actions.add_parser("fetch", parents=[root, mirror], help="obtain and verify dataset files")
    fetch.add_argument("names", nargs="*", metavar="NAME",
                       help=f"'all' (default), a group ({', '.join(registry.GROUPS)}) or a file path")
    fetch.set_defaults(func=_reporting_errors(_fetch))

    verify = actions.add_parser("verify", parents=[root], help="check every file's sha256 (exit 1 if any is bad)")
    verify.set_defaults(func=_reporting_errors(_verify))

    render = actions.add_parser("render-piano", parents=[root, mirror],
                                help="render piano-midi.de MIDI to 16 kHz FLAC (needs fluidsynth and sox)")
    render.add_argument("--out", metavar="DIR", help=f"output folder (default: <root>/{audio.RENDER_DIR})")
    render.add_argument("--limit", type=int, metavar="N", help="render at most N pieces")
    render.add_argument("--pieces", nargs="+", metavar="NAME", help="only these pieces (e.g. elise deb_clai)")
    render.add_argument("--midi-zip", metavar="FILE", help="MIDI zip (default: the registered piano-midi.de zip)")
    render.add_argument("--soundfont", metavar="FILE", help=f"SoundFont (default: the installed {audio.SOUNDFONT_NAME})")
    render.add_argument("--test-fraction", type=float, default=0.1, help="share of pieces held out (default 0.1)")
    render.set_defaults(func=_reporting_errors(_render))
