"""The order in which pytest-xdist's workers meet the GPU suite's longest tests (``benchmarks/gpu_test.sh``).

With ``--dist worksteal`` xdist first hands each of its W workers one contiguous block of the collected tests, in
order; an idle worker later takes the back half of the longest queue. A test of minutes that sits late in a block
therefore starts late: at d4e5af2 on an H100 the two longest (188 s and 159 s, WaveNet's fused generation kernel at
batch 28) finished last, and pytest ended 2 s inside the 539 s its command left it. Known long tests, by an earlier
suite's ``--durations`` section, are put at the fronts of the blocks instead, longest first, each on the block with
the fewest seconds of them so far; every other test keeps its order.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")

# "188.18s call     tests/a.py::t[x]" in pytest's "slowest N durations" section
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s (?:setup|call|teardown)\s+(\S.*?)\s*$")
# below this, where a test starts hardly moves the suite's end
LONG_S = 20.0


def durations(log_text: str) -> dict[str, float]:
    """Seconds per node id (setup, call and teardown together) in a pytest log's durations section."""
    found: dict[str, float] = {}
    section = False
    for line in log_text.splitlines():
        if "slowest" in line and "durations" in line:
            section = True
        elif section and line.startswith("="):
            section = False
        elif section and (m := _DURATION.match(line)):
            found[m.group(2)] = found.get(m.group(2), 0.0) + float(m.group(1))
    return found


def read_durations(path: str | Path) -> dict[str, float]:
    """:func:`durations` of the log at ``path``; a missing or unreadable log knows none (the order is then kept)."""
    try:
        return durations(Path(path).read_text(errors="replace"))
    except OSError:
        return {}


def block_sizes(n: int, workers: int) -> list[int]:
    """The sizes of the blocks xdist's work-stealing scheduler first sends its workers (its check_schedule: each
    idle worker in turn takes the pending tests' count divided by the workers still to serve)."""
    sizes, left = [], n
    for i in range(workers):
        sizes.append(left // (workers - i))
        left -= sizes[-1]
    return sizes


def long_first(items: Sequence[T], workers: int, seconds: Callable[[T], float | None]) -> list[T]:
    """``items`` reordered so that those whose ``seconds`` are at least :data:`LONG_S` lead the blocks of
    :func:`block_sizes`, longest first, each put on the block with the fewest such seconds that has room; the
    others follow in their own order. With fewer than two workers, or none long, the order is kept."""
    timed = [(s, i) for i, item in enumerate(items) if (s := seconds(item)) is not None and s >= LONG_S]
    if workers < 2 or not timed:
        return list(items)
    sizes = block_sizes(len(items), workers)
    heads: list[list[int]] = [[] for _ in sizes]
    load = [0.0] * len(sizes)
    for s, i in sorted(timed, key=lambda t: (-t[0], t[1])):
        k = min((k for k in range(len(sizes)) if len(heads[k]) < sizes[k]), key=lambda k: (load[k], k))
        heads[k].append(i)
        load[k] += s
    long_ids = {i for _, i in timed}
    rest = iter(i for i in range(len(items)) if i not in long_ids)
    order = [i for k, head in enumerate(heads) for i in head + [next(rest) for _ in range(sizes[k] - len(head))]]
    return [items[i] for i in order]
