"""Where the repository's folders are. Only the publish layer (and scripts outside the library) knows them."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"
RESULTS = REPO / "results"        # committed result records and benchmark runs
BUILD = REPO / "build"            # executed notebooks, one folder per scale (``sequnet run``)
# Committed benchmark JSON (GPU runs); SEQUNET_BENCH_DIR points the notebooks at another folder.
BENCH = Path(os.environ.get("SEQUNET_BENCH_DIR", RESULTS / "bench"))
