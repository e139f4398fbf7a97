"""The JavaScript the book's pages load, vendored from the npm registry so that no page loads anything from a CDN:
MathJax, require.js and the ipywidgets HTML manager, pinned by ``book/package-lock.json``."""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

# What the pages load, copied out of node_modules (source -> destination under book/_vendor/). MathJax keeps its
# folder layout because tex-chtml.js loads its fonts and extensions relative to itself.
VENDOR = {
    "mathjax/es5": "mathjax",
    "requirejs/require.js": "requirejs/require.js",
    "@jupyter-widgets/html-manager/dist": "jupyter-widgets",
}
# MathJax's other combined bundles and the widget manager's non-AMD build and source maps are never loaded.
VENDOR_SKIP = re.compile(r"^(?!tex-chtml\.js$)(tex|mml)-.*\.js$|^node-main\.js$|\.map$|^embed\.js|^libembed-amd\.js$")
# The widget manager validates the saved widget state with Ajv created without options; its schema has union types
# ("type": ["string", "null", ...]), which Ajv's strict mode allows but logs as "strict mode: use allowUnionTypes"
# on the console of every page with widgets. Each of the manager's set-ups of that validator (``x=new(ajv())``
# followed by ``x.compile(state)``; embed-amd.js holds two) gets the option; the validation itself is unchanged.
AJV_NEW = re.compile(r"(\w+)=new\((\w+)\(\)\)(?=[;,](?:\w+=)?\1\.compile\()")
PATCHES = "ajv-allowUnionTypes-2"      # part of the stamp: a change here re-vendors


def allow_union_types(path: Path) -> None:
    """Give the widget manager's schema validators ``allowUnionTypes`` (see ``AJV_NEW``); stops if the manager's
    code has none of those lines, so that an upgrade cannot silently bring the warnings back."""
    code = path.read_text(encoding="utf-8")
    patched, n = AJV_NEW.subn(r"\1=new(\2())({allowUnionTypes:!0})", code)
    if n == 0:
        raise SystemExit(f"sequnet book: {path}: found no Ajv set-up of the widget state schema; update AJV_NEW "
                         f"in sequnet/publish/vendor.py for this version of the widget manager")
    path.write_text(patched, encoding="utf-8")


def vendor_js(book: Path) -> None:
    """Fill ``book/_vendor`` from ``npm ci``; skipped while it matches ``package-lock.json``."""
    lock = book / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest() + "+" + PATCHES
    vendor, stamp = book / "_vendor", book / "_vendor" / ".package-lock.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("sequnet book: npm not found; it vendors MathJax and the widget manager for offline pages. "
                         "Install Node.js (Debian: apt-get install -y npm) or run `make npm`.")
    print("sequnet book: npm ci (MathJax, require.js, widget manager)", flush=True)
    # --ignore-scripts: nothing here needs an install script (one dependency only prints an attribution).
    subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"], cwd=book,
                   check=True)
    shutil.rmtree(vendor, ignore_errors=True)
    for source, target in VENDOR.items():
        src, dst = book / "node_modules" / source, vendor / target
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=lambda _, names: [n for n in names if VENDOR_SKIP.search(n)])
        else:
            shutil.copy2(src, dst)
    allow_union_types(vendor / "jupyter-widgets" / "embed-amd.js")
    stamp.write_text(digest)
