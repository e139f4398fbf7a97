#!/usr/bin/env bash
# The last step of the paper's procedure for the cells that miss Table 1 (issue 20 part 3): retrain each search's
# best learning rate and clipping (benchmarks/table1_hpo.sh, trials of 10 epochs) for the preset's full 100
# epochs, with each of SEEDS, side by side on one GPU under CUDA MPS. A changed-preset experiment: every record
# names its lr and clip as changes of the paper preset, and the reproduction page shows these runs beside their
# search (sequnet/publish/searches.py), never as Table 1 reproductions.
#
#   benchmarks/table1_retrain.sh OUT [WORK]
#
# The best values are read from the searches' summaries, SEARCHES/hpo_<task>_<arch>_<scale>.json (default
# SEARCHES=results/paper/hpo, where the committed ones are). Cost, from the seed runs on an H200: six MuseData and
# Nottingham runs side by side take about 10 minutes, so two commands: call again (same OUT and WORK, on the same
# machine: checkpoints do not come back) until it exits 0. A run whose finished record is in WORK is skipped.
#
# OUT   retrain.tar.gz (WORK's logs/ and each cell's records/: what is committed, under results/paper/hpo/) and
#       status.txt, rewritten by every call
# WORK  <task>_<arch>-best/{checkpoints,records}/ and logs/ (default runs/retrain, git-ignored)
# Environment: as benchmarks/table1_seeds.sh (wheels from .whl/, data from .devdata, SEQUNET_GIT_COMMIT), and
#   CELLS "TASK:ARCH ..." (default "nottingham:sequnet muse:sequnet"), SEEDS (default "1111 1 2"), SEARCHES,
#   TIME_LIMIT (default 450 s per call and process), MPS, and SCALE, DEVICE for a dry run on a CPU.
# Exit status: 0 every run finished, 3 some stopped early (call again), 1 a failure (see the logs), 2 a cell with
# no readable search summary.
set -u
out=${1:?usage: benchmarks/table1_retrain.sh OUT [WORK]}
. "$(dirname "$0")/table1_common.sh"
searches=$(cd "${SEARCHES:-results/paper/hpo}" 2>/dev/null && pwd) ||
    { echo "SEARCHES=${SEARCHES:-results/paper/hpo}: no such folder" >&2; exit 2; }
use_dirs "$out" "${2:-runs/retrain}" logs
use_device_copies || exit 1
cells=${CELLS:-nottingham:sequnet muse:sequnet}
seeds=${SEEDS:-1111 1 2}

best() {        # best TASK ARCH: "LR CLIP" of the search (clip "off" when the best trial did not clip)
    "$python" - "$searches/hpo_$1_$2_$scale.json" <<'EOF'
import json, sys
try:
    s = json.load(open(sys.argv[1], encoding="utf-8"))
    print(float(s["lr"]), "off" if s["clip"] is None else float(s["clip"]))
except (OSError, ValueError, KeyError, TypeError) as e:
    sys.exit(f"{sys.argv[1]}: no search summary to retrain from ({type(e).__name__}: {e}); run "
             "benchmarks/table1_hpo.sh first, or set SEARCHES")
EOF
}

finished() {    # finished RECORD: the run ended "ok" (an early stop never writes over such a record)
    "$python" -c "import sys; from pathlib import Path; from sequnet.experiment.checkpoints import finished_record
sys.exit(0 if finished_record(Path(sys.argv[1])) else 1)" "$1"
}

todo=()
for cell in $cells; do
    task=${cell%%:*}; arch=${cell#*:}
    values=$(best "$task" "$arch") || exit 2
    read -r lr clip <<<"$values"
    for seed in $seeds; do
        finished "$work/${task}_$arch-best/records/$(run_name "$task" "$arch" "$seed").json" ||
            todo+=("$task $arch $seed $lr $clip")
    done
done

report() {
    for cell in $cells; do
        task=${cell%%:*}; arch=${cell#*:}
        for f in "$work/${task}_$arch-best"/records/*.json; do
            [ -f "$f" ] || continue
            if finished "$f"; then echo "${f#"$work"/}: finished"; else echo "${f#"$work"/}: not finished"; fi
        done
    done | tee "$out/status.txt"
    (cd "$work" && tar -czf "$out/retrain.tar.gz" --exclude=".*.lock" logs $(ls -d ./*-best/records 2>/dev/null))
}

if [ ${#todo[@]} = 0 ]; then
    echo "every run of these cells has a finished record"
    report
    exit 0
fi
start_mps
extra=()
[ "${CUDA_GRAPHS:-1}" = 0 ] && extra+=(--no-cuda-graphs)
note=$(contended_note ${#todo[@]})
[ -n "$note" ] && extra+=(--note "$note")
echo "training ${#todo[@]} runs side by side: $(printf '%s; ' "${todo[@]}")"
pids=()
for run in "${todo[@]}"; do
    read -r task arch seed lr clip <<<"$run"
    "$python" -m sequnet.experiment.cli train "$task" "$arch" --seed "$seed" --scale "$scale" --device "$device" \
        --lr "$lr" --clip "$clip" --out "$work/${task}_$arch-best" --resume --no-progress \
        --time-limit "${TIME_LIMIT:-450}" "${extra[@]}" \
        --note "retrained for the preset's epochs with the best lr and clip of the reduced-cost search \
hpo_${task}_${arch}_$scale.json" >>"$work/logs/${task}_${arch}_seed$seed.log" 2>&1 &
    pids+=($!)
done
wait_all "${pids[@]}"; status=$?
report
exit $status
