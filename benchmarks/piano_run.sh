#!/usr/bin/env bash
# The raw piano experiment on one GPU, over several 10-minute commands: both models trained on the same fast path
# (bf16, channels-last, fused gate, CUDA graphs), compared at equal iterations and equal time, long generations
# for the stability study and the listening items' continuations; when the run is finished, the piano notebook at
# paper scale on it (which also writes the listening items from the generated set).
#
#   benchmarks/piano_run.sh OUT AUDIO_DIR      # call again (within 30 s, so that the machine is kept) while it
#                                              # exits with 75; 0: finished, notebook executed
#
# AUDIO_DIR: rendered recordings in train/ and test/ with manifest.json (python -m sequnet data render-piano).
# The run lives in WORK/piano_audio (default build/piano_run/piano_audio, inside the checkout, so it stays between
# the commands of one machine; checkpoints and the audio cache never leave it).
# Each call continues it (python -m sequnet.experiment.piano_run) for at most LIMIT seconds, starting no stage
# that would not end by then, and copies what exists so far to OUT.
#
# Time on an H200, measured in the run of 2026-12-02 (results/logs/2026-12-02e-h200-piano-training.tar.xz; bf16
# and every switch, batch 16): 3.67 WaveNet and 21.4 Seq-U-Net steps per second of budget, loop and captures
# included; ~20 s per call to start, load the audio (once decoded, it is cached in the run folder) and resume;
# ~30 s to evaluate the three models on EVAL_WINDOWS=1024 test and train windows; and the long generations,
# 8 x 30 s per model at batch 8: 297 s for WaveNet (1,616 steps/s, split-K products) and 44 s for the Seq-U-Net
# (10,975 steps/s). The fused per-layer kernel is no faster at batch 8 (608 against 613 us per WaveNet step,
# results/logs/2026-12-02f-h200-kernels-and-suite.tar.xz), so the listening items' 20 primes now ride in the same
# batch instead of a second generation of ~1 min. Then the notebook, which reads the run: ~2 min.
#
# OUT receives at most 8 files (what the device tool brings back, each under 16 MiB):
#   piano_run.log             this call's output (GPU, versions, the run's epochs), appended to by every call
#   records/piano_audio_{wavenet,sequnet}.json, curves.json, comparison.json   as far as the run has got
#   piano_audio.tar           when finished: the executed notebook and its folder piano_audio/ without
#                             checkpoints/, cache/, generations/ and listening_items/ (unpack into a run folder
#                             such as build/paper/ for `sequnet book --from build/paper`)
#   piano_generations.tar     as soon as one exists: piano_audio/generations/ (the generated sets as mu-law ids)
#   piano_items.tar           when the notebook ran: piano_audio/listening_items/ (with the key, listening_key.json)
#
# Environment: run from the repository root. Without papermill installed, the wheels of shared/device-wheels are
# taken from .whl/ (installed into /tmp/site once per machine).
#   BUDGET          seconds of WaveNet's training steps (default 600)
#   SEQUNET_BUDGET  seconds of Seq-U-Net's (default: BUDGET, equal wall-clock time)
#   LIMIT           seconds this call may run the experiment (default 540)
#   EVAL_WINDOWS    evenly spaced test windows (and as many train windows) evaluated (default 2048)
#   WORK            where the run and the notebook live (default build/piano_run)
#   NOTEBOOK_S      seconds the notebook needs: a call with less left (of LIMIT) leaves it to the next (240)
#   NOTEBOOK=0      no notebook there, only the archives; the notebook then runs on a CPU from them and writes
#                   the listening items there (benchmarks/piano_gpu_call.sh says how)
#   COMPILE=1       torch.compile both models for their training steps (run.json keeps it; every call must agree)
#   WAVENET_KERNELS WaveNet's generation kernel, or candidates timed on the run's batch first ("splitk chain")
#   CUT=1           the session's last call: generated sets that would not be finished within LIMIT are kept as
#                   long as they got (their metadata says so), instead of waiting for a call that cannot come
#   SCALE, DEVICE   a dry run on a CPU: SCALE=smoke DEVICE=cpu (tiny models, seconds)
# Exit status: 0 finished (notebook executed), 75 call again, anything else an error (see the log).
set -u
out=${1:?usage: benchmarks/piano_run.sh OUT AUDIO_DIR}
audio=${2:?usage: benchmarks/piano_run.sh OUT AUDIO_DIR (rendered recordings in train/ and test/)}
python=$(command -v "${PYTHON:-python3}") || { echo "no Python at ${PYTHON:-python3}" >&2; exit 1; }
case $python in /*) ;; *) python=$PWD/$python ;; esac     # papermill runs in $work
scale=${SCALE:-paper}
work=${WORK:-build/piano_run}
repo=$(pwd)
mkdir -p "$out/records" "$work"
out=$(cd "$out" && pwd)
log=$out/piano_run.log
[ -d "$audio/train" ] && [ -d "$audio/test" ] || {
    echo "AUDIO_DIR=$audio: no train/ and test/ folders of recordings there" | tee -a "$log" >&2; exit 2; }

. "$(dirname "${BASH_SOURCE[0]}")/device_wheels.sh"
device_wheels "$python" papermill jupytext soundfile || exit 1
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
{
    date -u +"call at %F %T UTC"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    "$python" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__)"
    echo "scale $scale; audio $audio; budgets: WaveNet ${BUDGET:-600} s," \
         "Seq-U-Net ${SEQUNET_BUDGET:-${BUDGET:-600}} s;" \
         "limit ${LIMIT:-540} s"
} >>"$log" 2>&1

# the run stores it relative to its own folder (run.json, published with the chapter, names no machine path)
args=(--scale "$scale" --audio-dir "$audio" --device "${DEVICE:-cuda}" --limit-s "${LIMIT:-540}")
[ "$scale" = paper ] && args+=(--budget-s "${BUDGET:-600}" --eval-windows "${EVAL_WINDOWS:-2048}")
[ -n "${SEQUNET_BUDGET:-}" ] && args+=(--sequnet-budget-s "$SEQUNET_BUDGET")
[ "$scale" = paper ] || args+=(--reserve-s 0)
[ "${CUT:-0}" = 1 ] && args+=(--cut-at-limit)
[ "${COMPILE:-0}" = 1 ] && args+=(--compile)
# shellcheck disable=SC2206  # WAVENET_KERNELS is a list of names
[ -n "${WAVENET_KERNELS:-}" ] && args+=(--wavenet-kernels $WAVENET_KERNELS)
"$python" -m sequnet.experiment.piano_run "$work/piano_audio" "${args[@]}" >>"$log" 2>&1
rc=$?
cp "$work"/piano_audio/records/*.json "$out/records/" 2>/dev/null
cp "$work"/piano_audio/{curves,comparison}.json "$out/" 2>/dev/null
# The generated sets as soon as they exist, finished run or not: the machine (and with it the run) may not be
# there for another call (2026-12-02: the long generations were made, then lost with the session's last second).
[ -d "$work/piano_audio/generations" ] && tar -cf "$out/piano_generations.tar" -C "$work" \
    --exclude="*.partial.npz" piano_audio/generations 2>>"$log"
if [ $rc != 0 ]; then
    echo "piano run: exit status $rc ($([ $rc = 75 ] && echo 'call again' || echo 'error, see the log'))" |
        tee -a "$log"
    exit $rc
fi

# The notebook takes about two minutes: when the run ended late in this call, it waits for the next one.
if [ "${NOTEBOOK:-1}" != 0 ] && [ $SECONDS -gt $(( ${LIMIT:-540} - ${NOTEBOOK_S:-240} )) ]; then
    echo "piano run finished after $SECONDS s of this call; call again for the notebook" | tee -a "$log"
    exit 75
fi

# The archives of a finished run: the run folder without checkpoints, cache, generations and items (and the
# executed notebook, when named), the generated sets, and the listening items with their key once written.
archives() {
    tar -cf "$out/piano_audio.tar" -C "$work" --exclude=piano_audio/checkpoints --exclude=piano_audio/cache \
        --exclude=piano_audio/generations --exclude=piano_audio/listening_items --exclude="*.lock" "$@" piano_audio \
        2>>"$log"
    tar -cf "$out/piano_generations.tar" -C "$work" --exclude="*.partial.npz" piano_audio/generations 2>>"$log"
    [ ! -d "$work/piano_audio/listening_items" ] ||
        tar -cf "$out/piano_items.tar" -C "$work" piano_audio/listening_items 2>>"$log"
}

if [ "${NOTEBOOK:-1}" = 0 ]; then
    # Nothing else needs this machine: the notebook runs on a CPU from piano_audio.tar and piano_generations.tar
    # (the listening items are written there from generations/items.npz).
    archives
    ls -l "$out" | tee -a "$log"
    exit 0
fi

# Finished: the notebook at paper scale reads the run (its folder is the notebook's out_dir) and writes the
# chapter's figures, audio and listening items beside it.
"$python" -m jupytext --to ipynb notebooks/piano_audio.md -o "$work/in.ipynb" >>"$log" 2>&1 || exit 1
start=$SECONDS
(cd "$work" && "$python" -m papermill in.ipynb piano_audio.partial.ipynb -k python3 --log-output \
    --no-progress-bar -p scale "$scale" -p out_dir piano_audio -p device "${DEVICE:-cuda}") >>"$log" 2>&1
rc=$?
echo "papermill exit status $rc after $((SECONDS - start)) s" | tee -a "$log"
name=$([ $rc = 0 ] && echo piano_audio.ipynb || echo piano_audio.failed.ipynb)
[ -f "$work/piano_audio.partial.ipynb" ] && mv "$work/piano_audio.partial.ipynb" "$work/$name"
archives "$name"
ls -l "$out" "$out/records" | tee -a "$log"
"$python" - "$work/piano_audio" <<'EOF' | tee -a "$log"
import json, pathlib, sys
run = pathlib.Path(sys.argv[1])
comparison = json.loads((run / "comparison.json").read_text())
for what, points in (("equal iterations", comparison["equal_iterations"]), ("each at its end", comparison["ends"])):
    print(what + ": " + "; ".join(f"{arch} {p['steps']} steps, test {p['test_bits']:.3f} bits/sample"
                                  for arch, p in points.items()))
same = comparison["equal_time"]
print(f"equal time ({same['seconds']:.0f} s): " + "; ".join(
    f"{arch} {same[arch]['steps']} steps, training loss {same[arch]['train_loss_bits']:.3f} bits/sample"
    for arch in ("wavenet", "sequnet")))
EOF
exit $rc
