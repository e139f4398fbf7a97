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


def vendor_js(book: Path) -> None:
    """Fill ``book/_vendor`` from ``npm ci``; skipped while it matches ``package-lock.json``."""
    lock = book / "package-lock.json"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
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
    stamp.write_text(digest)
