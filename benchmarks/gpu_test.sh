#!/usr/bin/env bash
# The GPU test suite: every test (pytest -m "not book and not dry_run") on the device machine, where the GPU tests
# run instead of skipping, within one 10-minute command. `make gpu-test` calls it. The dry runs of the device scripts
# (tests/test_device_scripts.py, QUICK=1 on the CPU whatever the machine) are left to `make test`: there they check
# the same, and on the device machine they took over 520 s of the workers' time, which cut the suite at 6d3a360 past its
# command on an H100 (2026-12-06: 953 tests done in 563 s, 65 left).
#
#   benchmarks/gpu_test.sh [LOG]          LOG defaults to results/gpu-test/gpu-test.log
#   GPU_TEST_LIMIT_S=S                    interrupt pytest after S seconds (it still prints its summary)
#   GPU_TEST_AFTER=EARLIER_LOG            run only the tests EARLIER_LOG has no outcome for
#   GPU_TEST_DURATIONS=LOG                start the tests LOG found long first (default: the newest committed log;
#                                         empty: collection order)
#
# It fails at once without a CUDA GPU (a suite that skipped every GPU test would vouch for nothing). The machine
# has no network: the wheels of shared/device-wheels (and the project's extra ones; benchmarks/device_prep.sh makes
# .whl and .devdata) come from .whl/ (installed into /tmp/site when papermill is
# missing) and the data from SEQUNET_DATA_MIRROR, else the first of .devdata, ../shared/data that holds a
# MANIFEST.md. The log starts with the GPU, the versions and the commit, and ends with pytest's summary; tests
# that need more GPUs than are visible skip and say why (-rs lists them).
set -uo pipefail
log=${1:-results/gpu-test/gpu-test.log}
mkdir -p "$(dirname "$log")"
python=${PYTHON:-python3}
"$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu-test: no CUDA GPU visible to $python; run this on the GPU machine" >&2; exit 2; }
. "$(dirname "${BASH_SOURCE[0]}")/device_wheels.sh"
device_wheels "$python" papermill jupytext soundfile hyperopt mido xdist || exit 2
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
if [ -z "${SEQUNET_DATA_MIRROR:-}" ]; then
    for d in .devdata ../shared/data; do
        if [ -f "$d/MANIFEST.md" ]; then export SEQUNET_DATA_MIRROR=$(cd "$d" && pwd); break; fi
    done
fi
# A mirror without every registered file fails the tests that read the missing ones, after minutes of device time
# (2026-12-03: the piano variant of .devdata, which leaves out the six registered piano FLACs, failed 15 tests
# after 383 s). So the mirror is verified first (seconds), and an incomplete one stops the suite here.
if [ -n "${SEQUNET_DATA_MIRROR:-}" ]; then
    verified=$("$python" -m sequnet data verify --root "$SEQUNET_DATA_MIRROR" 2>&1) || {
        echo "$verified" | grep -v " ok$" >&2
        echo "gpu-test: the data mirror $SEQUNET_DATA_MIRROR lacks registered files (above), which the suite reads;" \
            "make it with \`benchmarks/device_prep.sh tests\` (the piano variant leaves the piano FLACs out)" >&2
        exit 2; }
fi
# The suite outgrew one 10-minute command run serially (2026-12-02: still in tests/test_midi.py after 540 s):
# pytest-xdist (carried in .whl/, see benchmarks/device_prep.sh) spreads it over WORKERS processes (default 6 of
# the 16 cores), which share the one GPU; no test times anything, and `make test` runs the same tests serially.
# More is not faster: with 6 workers the suite took 314 s (2026-12-02), with 12 it had not finished when a 330 s
# limit (wheels included) stopped it (2026-12-03). -v prints a line per test, so that a log cut short by the
# command's limit still says how far it got (without it the progress dots wait for a newline: that log stopped at
# the collection).
workers=${WORKERS:-6}
marks="not book and not dry_run"
parallel=()
if [ "$workers" != 0 ] && "$python" -c "import xdist" 2>/dev/null; then
    # --dist worksteal: xdist's default hands each worker a block of consecutive tests first, so one worker got
    # most of tests/test_benchmarks.py (whose compiling tests take 30-95 s each on a shared GPU): in the 567 s of
    # 2c0e1db's suite on an H100 it ran 38 tests while another ran 546, and 9 of that file's tests were left for a
    # second command (results/gpu-test/gpu-test-2c0e1db-h100*.log). Idle workers now take tests from busy ones' queues.
    parallel=(-n "$workers" --dist worksteal)
    # Each worker's torch would otherwise start one CPU thread per core: 6 x 16 threads on 16 cores. The CPU tests
    # then wait on each other's spinning threads: test_piano_fast_script_writes_every_variant took 277 s there
    # (2026-12-02) and 11 s serially on a 2-core machine. So the cores are shared out (OMP_NUM_THREADS, which torch
    # and MKL read at start-up; a test that sets its own threads still does).
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / workers > 0 ? $(nproc) / workers : 1 ))}
    export MKL_NUM_THREADS=${MKL_NUM_THREADS:-$OMP_NUM_THREADS}
fi
{
    echo "# GPU test suite, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    # The device tool's copy of the checkout keeps the last landed commit's git with this session's tree on top:
    # without SEQUNET_GIT_COMMIT, a changed tree is said to be one (the 2026-12-02 logs named the wrong commit).
    commit=${SEQUNET_GIT_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
    if [ -z "${SEQUNET_GIT_COMMIT:-}" ] && [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        commit="$commit with uncommitted changes (set SEQUNET_GIT_COMMIT to the commit they are)"
    fi
    echo "# commit $commit"
    "$python" - <<'PY'
import platform, torch, pytest
print(f"# {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}, torch {torch.__version__}, "
      f"cuDNN {torch.backends.cudnn.version()}, Python {platform.python_version()}, pytest {pytest.__version__}")
PY
    echo "# command: pytest -m '$marks' -rs -v --durations=40 -p no:cacheprovider ${parallel[*]}" \
        "${GPU_TEST_AFTER:+(the tests $(basename "$GPU_TEST_AFTER") has no outcome for)}" \
        "(OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset})"
} > "$log"
start=$SECONDS
# The checkout's, the wheelhouse's and pytest's temporary paths are this machine's: the committed log shows them
# relative (a failing test's traceback names its temporary folder).
# --durations: the suite's time on the machine grew from 314 s (807 tests) to 467 s (817 tests, 2026-12-03) of the
# command's 600; the slowest tests say where to look before it outgrows one command.
# GPU_TEST_LIMIT_S: interrupt pytest (SIGINT) after that many seconds, so that a suite cut short still prints its
# failures' tracebacks, the slowest tests and its counts (2026-12-05: killed at its caller's limit on an H100, the
# log had none of them, only two FAILED lines).
limit=()
[ -n "${GPU_TEST_LIMIT_S:-}" ] && limit=(timeout -s INT -k 30 "$GPU_TEST_LIMIT_S")
# GPU_TEST_DURATIONS=LOG: the tests that LOG's durations section found long start first, one or two at the front of
# each worker's first block (tests/xdist_order.py). By default, the newest committed suite's log (by the date on
# its first line) that has one: at d4e5af2 the two longest had started late, finished last, and pytest ended 2 s
# before its limit on an H100.
if [ -z "${GPU_TEST_DURATIONS+set}" ]; then
    GPU_TEST_DURATIONS=$(grep -l "slowest [0-9]* durations" results/gpu-test/*.log 2>/dev/null \
        | while read -r f; do echo "$(head -1 "$f") $f"; done | grep "^# GPU test suite, " | sort | tail -1 \
        | awk '{print $NF}')
fi
[ -n "$GPU_TEST_DURATIONS" ] && export SEQUNET_TEST_DURATIONS=$GPU_TEST_DURATIONS
echo "# long tests first by: ${GPU_TEST_DURATIONS:-none}" | tee -a "$log"
# GPU_TEST_AFTER=EARLIER_LOG: only the tests that log has no outcome for (benchmarks/gpu_test_rest.py), to finish in
# a second command a suite that GPU_TEST_LIMIT_S cut short (an H100 needs more than one 10-minute command for it)
selection=()
if [ -n "${GPU_TEST_AFTER:-}" ]; then
    rest=$(mktemp)
    "$python" benchmarks/gpu_test_rest.py "$GPU_TEST_AFTER" "$rest" -m "$marks" 2>&1 | tee -a "$log"
    [ "${PIPESTATUS[0]}" = 0 ] || exit 2
    if [ ! -s "$rest" ]; then    # pytest given no test would run the whole suite
        echo "# nothing left to run after $(basename "$GPU_TEST_AFTER")" | tee -a "$log"; exit 0; fi
    selection=("@$rest")
fi
"${limit[@]}" "$python" -m pytest -m "$marks" -rs -v --durations=40 -p no:cacheprovider \
    -o console_output_style=classic "${parallel[@]}" "${selection[@]}" 2>&1 \
    | sed -u -e "s#$PWD/##g" -e "s#$PWD#.#g" -e "s#/tmp/site/#site-packages/#g" \
        -e "s#/tmp/pytest-of-[^/]*/pytest-[0-9]*/#<pytest-tmp>/#g" | tee -a "$log"
status=${PIPESTATUS[0]}
echo "# pytest exit status $status after $((SECONDS - start)) s" | tee -a "$log"
exit "$status"
