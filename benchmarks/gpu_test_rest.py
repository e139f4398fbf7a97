"""The tests an earlier log of the GPU suite has no outcome for, one node id a line, for pytest's @FILE.

    python benchmarks/gpu_test_rest.py EARLIER_LOG REST_FILE [pytest selection arguments...]

On an H100 the whole suite outgrew one 10-minute device command (2026-12-05: 912 of 1,009 tests in 545 s; an H200
ran it in 404 s), so `benchmarks/gpu_test.sh` can finish a suite that its time limit cut short in a second command
(GPU_TEST_AFTER=EARLIER_LOG): this collects the suite as pytest sees it on that machine (GPU-only parametrisations
included) and leaves out every test the earlier log gave an outcome, failures included (a failure stays one; it is
not retried until it passes). A test that was running when the limit struck has no outcome and runs again.
"""
import re
import subprocess
import sys
from pathlib import Path

# "[gw3] PASSED tests/a.py::t[x]" with pytest-xdist, "tests/a.py::t[x] PASSED" serially (-v)
_OUTCOMES = "PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR"
_XDIST = re.compile(rf"^\[gw\d+\] (?:{_OUTCOMES}) (\S+::\S.*?)\s*$")
_SERIAL = re.compile(rf"^(\S+::\S.*?) (?:{_OUTCOMES})\b")


def finished(log_text: str) -> set[str]:
    """The node ids that have an outcome line in a `pytest -v` log, with or without pytest-xdist."""
    done = set()
    for line in log_text.splitlines():
        m = _XDIST.match(line) or _SERIAL.match(line)
        if m:
            done.add(m.group(1))
    return done


def remaining(collected: list[str], log_text: str) -> list[str]:
    """``collected`` (in pytest's order) less the tests the log finished."""
    done = finished(log_text)
    return [node for node in collected if node not in done]


def collect(selection: list[str]) -> list[str]:
    """The node ids `pytest --collect-only -q` lists for ``selection`` (run in the current folder)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           *selection], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"gpu_test_rest: collecting the suite failed (exit {done.returncode}):\n"
                 f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return [line.strip() for line in done.stdout.splitlines() if "::" in line and not line.startswith(" ")]


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(__doc__)
    log, out = Path(argv[0]), Path(argv[1])
    if not log.is_file():
        sys.exit(f"gpu_test_rest: no earlier log at {log}; give the log of the suite that was cut short")
    text = log.read_text(errors="replace")
    if not finished(text):
        sys.exit(f"gpu_test_rest: {log} has no test outcomes (is it a `pytest -v` log of this suite?)")
    collected = collect(argv[2:])
    rest = remaining(collected, text)
    out.write_text("".join(f"{node}\n" for node in rest))
    print(f"gpu_test_rest: {len(collected)} tests collected, {len(collected) - len(rest)} finished in {log.name}, "
          f"{len(rest)} to run")


if __name__ == "__main__":
    main(sys.argv[1:])
