#!/usr/bin/env bash
# The raw piano audio notebook at paper scale on one GPU, within one 10-minute command.
#
#   benchmarks/piano_paper.sh OUT
#
# Table 2's models (Seq-U-Net 26.9 M, WaveNet 8.1 M parameters), batch 16, 5000 targets, Adam 5e-4, each trained
# for the same TIME_BUDGET seconds (the paper's 246k iterations are out of reach), evaluated on every test window;
# then 4 real primes of 1.5 s from the test pieces continued for 20 s by each model (CUDA graphs), the first
# 3.5 s of which become the listening items, and the stability study over all 20 s.
#
# OUT receives at most 7 files, none deeper than one folder (what the device tool brings back):
#   piano_audio.ipynb          the executed notebook (piano_audio.failed.ipynb if a cell failed)
#   piano_audio.log            papermill's log (cell outputs, tracebacks) after the GPU and versions
#   piano_audio.tar            the executed notebook and its out_dir piano_audio/ (records, audio, figures,
#                              listening_items/): unpack into build/paper/ for `sequnet book --from build/paper`
#   records/piano_audio_{sequnet,wavenet}.json, piano_audio_stability.png, piano_audio_curves.png
#
# Time: 2 x TIME_BUDGET of training, ~30 s evaluating every test window, ~30 s of start-up, and 320k generation
# steps (4 x 20 s) per model. With CUDA graphs on an H200 a step took 45 us for the Seq-U-Net and 450 us for the
# WaveNet at batch 1 (results/bench/generation-h200.json): ~15 s and ~2.5 min. About 8 minutes in all with the
# default budget of 110 s; the notebook reports both generation speeds.
#
# Environment: run from the repository root. Without papermill installed, the wheels of shared/device-wheels are
# taken from .whl/ (installed into /tmp/site, 3 s). Data come from SEQUNET_DATA_MIRROR, else the first of
# .devdata, ../shared/data, shared/data that holds piano/ (only piano/rendered/ is read).
#   TIME_BUDGET   seconds of training per model (default 110)
#   LIMIT         seconds the notebook may run in all before it is stopped (default 540)
#   WORK          where the notebook runs (default /tmp/piano_paper)
#   SCALE, DEVICE for a dry run of this script on a CPU: SCALE=smoke DEVICE=cpu (the presets of that scale)
# Exit status: papermill's (0: every cell ran).
set -u
out=${1:?usage: benchmarks/piano_paper.sh OUT}
python=$(command -v "${PYTHON:-python3}") || { echo "no Python at ${PYTHON:-python3}" >&2; exit 1; }
case $python in /*) ;; *) python=$PWD/$python ;; esac     # papermill runs in $work
budget=${TIME_BUDGET:-110}
limit=${LIMIT:-540}
scale=${SCALE:-paper}
params=(-p scale "$scale" -p out_dir piano_audio -p device "${DEVICE:-cuda}")
if [ "$scale" = paper ]; then
    params+=(-p time_budget_s "$budget" -p gen_seconds 3.5 -p long_seconds 20 -p n_items 4 -p prime_seconds 1.5)
fi
work=${WORK:-/tmp/piano_paper}
repo=$(pwd)
mkdir -p "$out/records" "$work"
out=$(cd "$out" && pwd)

if ! "$python" -c "import papermill, jupytext, soundfile" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "papermill is not installed and there is no .whl/ wheelhouse (a copy of shared/device-wheels)" >&2
        exit 1
    fi
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# The kernel runs in $work: sequnet must be importable from this checkout by an absolute path.
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
if [ -z "${SEQUNET_DATA_MIRROR:-}" ]; then
    for d in .devdata ../shared/data shared/data; do
        if [ -d "$d/piano/rendered" ]; then export SEQUNET_DATA_MIRROR=$(cd "$d" && pwd); break; fi
    done
fi
export SEQUNET_DATA=${SEQUNET_DATA:-$work/data}

log=$out/piano_audio.log
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    "$python" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)"
    echo "scale $scale; data mirror: ${SEQUNET_DATA_MIRROR:-none}; time budget per model: $budget s;" \
         "notebook limit: $limit s"
} >"$log" 2>&1
"$python" -m jupytext --to ipynb notebooks/piano_audio.md -o "$work/in.ipynb" >>"$log" 2>&1 || exit 1
rm -rf "$work/piano_audio" "$work"/piano_audio*.ipynb
start=$SECONDS
# The kernel's working directory is $work and out_dir is piano_audio, the layout of `sequnet run` (whose retry
# after a timeout would not fit in one command).
(cd "$work" && timeout "$limit" "$python" -m papermill in.ipynb piano_audio.partial.ipynb -k python3 \
    --execution-timeout "$limit" --log-output --no-progress-bar "${params[@]}") >>"$log" 2>&1
rc=$?
echo "papermill exit status $rc after $((SECONDS - start)) s" | tee -a "$log"
name=$([ $rc = 0 ] && echo piano_audio.ipynb || echo piano_audio.failed.ipynb)
[ -f "$work/piano_audio.partial.ipynb" ] && mv "$work/piano_audio.partial.ipynb" "$work/$name"

cp "$work/$name" "$out/" 2>/dev/null
cp "$work"/piano_audio/records/*.json "$out/records/" 2>/dev/null
cp "$work"/piano_audio/figures/piano_audio_{stability,curves}.png "$out/" 2>/dev/null
tar -cf "$out/piano_audio.tar" -C "$work" "$name" piano_audio 2>>"$log"
ls -l "$out" "$out/records"
"$python" - "$out/records" <<'EOF'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(path.read_text())
    steps = sum(h["steps"] for h in r["history"])
    print(f"{r['model']}: {r['status']}, {steps} steps; bits/sample {r['metrics']}; "
          f"{r['time_per_step_s']} s/step, peak {r['peak_memory_mib']} MiB")
EOF
exit $rc
