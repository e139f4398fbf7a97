"""``sequnet data fetch | verify | soundfont | render-piano``."""
from __future__ import annotations

import argparse
import sys

from sequnet.data import audio, piano_font, registry, render


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
    result = render.render_piano(args.out, args.midi_zip, renderer=args.renderer, soundfont=args.soundfont,
                                 workers=args.workers, limit=args.limit, pieces=args.pieces, hours=args.hours,
                                 test_fraction=args.test_fraction, root=args.root, mirror=args.mirror)
    print(f"rendered {len(result.rendered)} piece(s); manifest: {result.manifest}")
    for name, why in result.failed.items():
        print(f"error: {name} did not render: {why}", file=sys.stderr)
    if result.failed:
        print(f"{len(result.failed)} piece(s) failed (listed in the manifest); the others are in place. Fix or "
              f"leave out those MIDI files (--pieces) and run the same command again.", file=sys.stderr)
    return 1 if result.failed else 0


def _soundfont(args: argparse.Namespace) -> int:
    print(piano_font.piano_font(root=args.root, mirror=args.mirror))
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

    font = actions.add_parser("soundfont", parents=[root, mirror],
                              help="make the piano SoundFont for --renderer tinysoundfont and print its path")
    font.set_defaults(func=_reporting_errors(_soundfont))

    piano = actions.add_parser("render-piano", parents=[root, mirror],
                               help="render piano-midi.de MIDI to 16 kHz FLAC, split by piece, with a manifest")
    piano.add_argument("--renderer", choices=render.RENDERERS, default="fluidsynth",
                       help="fluidsynth (+ sox, the registered recipe; default) or tinysoundfont (a wheel)")
    piano.add_argument("--soundfont", metavar="FILE",
                       help=f"SoundFont (fluidsynth: the installed {audio.SOUNDFONT_NAME} by default; tinysoundfont: "
                            f"required, the path `data soundfont` prints)")
    piano.add_argument("--workers", type=int, default=1, metavar="N", help="pieces rendered at once (default 1)")
    piano.add_argument("--out", metavar="DIR", help=f"output folder (default: <root>/{render.RENDER_DIR})")
    piano.add_argument("--hours", type=float, nargs=2, metavar=("TRAIN", "TEST"),
                       help="render pieces of each side until they reach these hours (e.g. 10.5 1.2)")
    piano.add_argument("--limit", type=int, metavar="N", help="render at most N pieces")
    piano.add_argument("--pieces", nargs="+", metavar="NAME", help="only these pieces (e.g. elise deb_clai)")
    piano.add_argument("--midi-zip", metavar="FILE", help="MIDI zip (default: the registered piano-midi.de zip)")
    piano.add_argument("--test-fraction", type=float, default=0.1, help="share of pieces held out (default 0.1)")
    piano.set_defaults(func=_reporting_errors(_render))
