#!/usr/bin/env bash
# Table 1 at paper scale on one GPU: every (task, model) run as its own resumable training process, all at once,
# then each task's notebook executed with papermill at paper scale, reporting those runs from their checkpoints
# (notebooks/language.md with -p task for char_ptb and word_ptb, notebooks/music.md with -p dataset for the others).
#
#   benchmarks/table1_paper.sh train OUT [WORK]      start or resume every run; returns when all have ended
#   benchmarks/table1_paper.sh report OUT [WORK]     execute the notebooks on the checkpoints (seconds per task)
#
# OUT   logs (<task>_<arch>.log), and from `report` the executed notebooks <name>.ipynb with their out_dir <name>/
#       (records/, figures/) in the layout of `sequnet run`, ready for `sequnet book --from OUT`
# WORK  checkpoints and records of the training processes (default runs/table1, git-ignored): `train` again
#       resumes whatever had not finished.
#
# The language and music models are small: one alone leaves most of an H100/H200 idle, its time going to kernel
# launches and latencies. Run side by side under CUDA MPS (started here when `nvidia-cuda-mps-control` exists and
# MPS=1), their kernels share the GPU; the time per step in their records is then measured under that sharing,
# which each record's notes say ("trained side by side ..."): the clean per-model costs are benchmarks/training.py's.
#
# Environment: run from the repository root with sequnet importable and SEQUNET_DATA_MIRROR at a copy of
# shared/data (ptb/ and music/ are read).
#   TASKS       default "char_ptb word_ptb nottingham muse jsb piano_midi"
#   EPOCHS      `report` only: report the runs as they stand after this many epochs (their records then say that
#               the paper's 100 epochs were changed); `train` always aims at the paper's epochs
#   SEED        `report` only: report the runs of this seed (checkpoints <task>_<arch>_seed<N>.pt; default the
#               preset's 1111), as benchmarks/table1_seeds.sh report does
#   TIME_LIMIT  `train`: seconds each process may train in this call before stopping resumably (default: none)
#   CUDA_GRAPHS 0 trains with --no-cuda-graphs (default 1: the trainer's default)
#   MPS         1 (default) starts the MPS daemon if there is one; 0 does not
#   VARIANTS    `train`: extra runs beside the paper's, "TASK ARCH OPTION..." separated by ';', e.g.
#               VARIANTS="word_ptb sequnet --lr 0.0002; word_ptb sequnet --clip 0.25": run N trains into
#               WORK/variant-N (log OUT/TASK_ARCH.variant-N.log) and its record names the change of the preset.
#               The notebooks report the paper's runs only; a variant's record is in WORK/variant-N/records.
#   SCALE, DEVICE  for a dry run of this script on a CPU: SCALE=smoke DEVICE=cpu (default paper, cuda)
# Exit status: train: 0 all finished, 3 some stopped early (run again), 1 a failure (see the logs);
#              report: 0 every notebook ran, 1 otherwise.
set -u
mode=${1:?usage: benchmarks/table1_paper.sh train|report OUT [WORK]}
out=${2:?usage: benchmarks/table1_paper.sh train|report OUT [WORK]}
tasks=${TASKS:-char_ptb word_ptb nottingham muse jsb piano_midi}
. "$(dirname "$0")/table1_common.sh"
use_dirs "$out" "${3:-runs/table1}"

case $mode in
train)
    start_mps
    IFS=';' read -ra variants <<<"${VARIANTS:-}"
    for variant in "${variants[@]}"; do        # checked before anything starts
        read -ra words <<<"$variant"
        if [ ${#words[@]} = 1 ]; then
            echo "VARIANTS: '${words[*]}' names no TASK ARCH (expected TASK ARCH OPTION...)" >&2; exit 2
        fi
    done
    extra=()
    [ "${CUDA_GRAPHS:-1}" = 0 ] && extra+=(--no-cuda-graphs)
    [ -n "${TIME_LIMIT:-}" ] && extra+=(--time-limit "$TIME_LIMIT")
    n_runs=0
    for task in $tasks; do n_runs=$((n_runs + 2)); done
    for variant in "${variants[@]}"; do read -ra words <<<"$variant"; [ ${#words[@]} = 0 ] || n_runs=$((n_runs + 1)); done
    note=$(contended_note $n_runs)
    [ -n "$note" ] && extra+=(--note "$note")
    pids=()
    for task in $tasks; do
        for arch in tcn sequnet; do
            # sequnet.experiment.cli loads only what training needs (no soundfile on GPU images)
            "$python" -m sequnet.experiment.cli train "$task" "$arch" --scale "$scale" --device "$device" --out "$work" \
                --resume --no-progress "${extra[@]}" >>"$out/${task}_$arch.log" 2>&1 &
            pids+=($!)
        done
    done
    n=0
    for variant in "${variants[@]}"; do
        read -ra words <<<"$variant"
        [ ${#words[@]} = 0 ] && continue
        n=$((n + 1))
        "$python" -m sequnet.experiment.cli train "${words[@]:0:2}" --scale "$scale" --device "$device" \
            --out "$work/variant-$n" --resume --no-progress "${extra[@]}" "${words[@]:2}" \
            >>"$out/${words[0]}_${words[1]}.variant-$n.log" 2>&1 &
        pids+=($!)
    done
    wait_all "${pids[@]}"; status=$?
    for task in $tasks; do tail -n 2 "$out/${task}"_*.log; done
    exit $status
    ;;
report)
    status=0
    for task in $tasks; do
        case $task in
            char_ptb|word_ptb) notebook=language; name=$task; params=(-p task "$task") ;;
            *) notebook=music; name=music_$task; params=(-p dataset "$task") ;;
        esac
        [ -n "${EPOCHS:-}" ] && params+=(-p epochs "$EPOCHS")
        [ -n "${SEED:-}" ] && params+=(-p seed "$SEED")
        "$python" -m jupytext --to ipynb "notebooks/$notebook.md" -o "$out/$name.in.ipynb" >/dev/null || exit 1
        # the kernel's working directory is OUT and out_dir is <name>: the layout of `sequnet run`
        (cd "$out" && "$python" -m papermill "$name.in.ipynb" "$name.partial.ipynb" -k python3 --log-output \
            --no-progress-bar -p scale "$scale" -p device "$device" -p out_dir "$name" -p checkpoints "$work/checkpoints" \
            "${params[@]}") >>"$out/$name.report.log" 2>&1
        rc=$?
        rm -f "$out/$name.in.ipynb"
        if [ $rc = 0 ]; then mv "$out/$name.partial.ipynb" "$out/$name.ipynb"
        else mv "$out/$name.partial.ipynb" "$out/$name.failed.ipynb" 2>/dev/null; status=1; fi
        echo "$name: papermill exit status $rc"
    done
    exit $status
    ;;
*)
    echo "usage: benchmarks/table1_paper.sh train|report OUT [WORK]" >&2
    exit 2
    ;;
esac
