#!/usr/bin/env bash
# Table 1 with three seeds per cell (issue 20): every Table 1 run (6 datasets x TCN / Seq-U-Net) with seeds 1111, 1
# and 2 at paper scale, the paper's settings unchanged, side by side on one GPU under CUDA MPS as
# benchmarks/table1_paper.sh trains them. Resumable and idempotent: a seed whose finished record exists is skipped.
#
#   benchmarks/table1_seeds.sh train OUT [WORK]     start or resume the missing seeds of this session's cells
#   benchmarks/table1_seeds.sh status OUT [WORK]    which seeds each cell has, where (nothing trains)
#   benchmarks/table1_seeds.sh report OUT [WORK]    the chapters of this session's tasks on one seed's checkpoints
#
# Which seeds exist: `python -m sequnet.experiment.seeds` reads every record under HAVE (default results/published
# results/paper) and WORK/records, and counts a record as seed N of a cell when it is a finished paper-scale run of
# that cell whose configuration is the preset's (device, CUDA graphs and warm-up aside), in one process and for all
# its epochs (see that module). So the runs committed before this script (seed 1111, the official scripts' default)
# are the first seed of every cell, and the earlier MuseData Seq-U-Net run with seed 2 (results/paper/music_seeds)
# is that cell's seed 2: 23 runs were left, none is (2026-12-03). A diverged seed counts as finished (it is a result)
# and is not retried (the word-PTB Seq-U-Net's seed 2 diverged in epoch 38).
#
# The GPU sessions (30 minutes of device time each, commands of at most 10 minutes; a fresh machine each, so a run
# must finish within its session: checkpoints do not come back). Done so far (results/paper/seeds/records/): JSB
# (2026-12-03, eight runs side by side with char's, which were lost with their machine), Piano-midi (four runs,
# 96-112 s each), MuseData (three runs, 395-484 s; the Seq-U-Net's last four epochs in a second command),
# Nottingham (four runs beside a second JSB seed-1 pair, whose checkpoints the JSB chapter needed: two commands,
# 462 and 206 s), char-PTB (four runs, 1,025-1,090 s each: three commands of 465, 466 and 265 s, the last with
# the chapter's report) and word-PTB (four runs: three commands of 580, 577 and 202 s with TIME_LIMIT=560, 560 and
# 470, the last with the chapter's report; 1,465 s of the session's 1,800 with the machine's start), with each
# task's chapter reported on seed 1.
#   SESSION=1  char_ptb (done 2026-12-03)
#   SESSION=2  word_ptb (done 2026-12-03)
#   SESSION=3  nottingham (done 2026-12-03)
# A session's commands must follow each other within the 30 s a machine waits, or its checkpoints are lost
# (2026-12-03: no machine could be had for the second command, twice). Cells that fit one command (CELLS with
# TASK:ARCH:SEED, e.g. "nottingham:tcn:1 nottingham:sequnet:1", then the two seeds 2) lose nothing that way.
# The three seeds leave the Seq-U-Net gaps of MuseData (7.039 +- 0.031 against 6.969) and Nottingham (3.085 +-
# 0.075 against 2.97) unexplained, so the paper's search at reduced cost followed (benchmarks/table1_hpo.sh, issue
# 20 part 3), then its best setting for 100 epochs (benchmarks/table1_retrain.sh).
# Without SESSION (or with CELLS="TASK:ARCH ...") every missing seed of those cells starts at once.
# Each session: call `train` again (same OUT and WORK) until it exits 0; every call ends within TIME_LIMIT plus the
# last epoch's evaluation (use the device tool's timeout of 600 s). Then unpack OUT/seeds.tar.gz and commit its
# records/ under results/paper/seeds/ before the next session, so that the next one skips them.
# When a session's seeds have finished and a command's time is left, `report` (same OUT and WORK, on the same
# machine: the checkpoints do not come back) executes the chapter of each task of the session whose two models both
# finished seed REPORT_SEED (default 1) in WORK, on their checkpoints (benchmarks/table1_paper.sh report with SEED):
# the paper-scale chapters with their text and music samples (issue 21), which only a machine holding the
# checkpoints can write. Seconds per task on a GPU. OUT/chapters.tar.gz holds the executed notebooks and their
# folders in the layout of `sequnet run`; here: untar it into build/paper and `python -m sequnet.publish.promote
# build/paper NAME... --replace` (the replaced chapters' records of other seeds, 1111's, move to
# results/paper/seeds/records/, beside the seeds' own; the reproduction page counts a run recorded twice once).
# With REPORT_SEED set, `train` runs it itself when the seeds have finished and more than 60 s of CALL_S (default
# 570, seconds since the call started) are left, bounded by the rest.
#
# OUT   seeds.tar.gz (WORK's records/ and logs/) and status.txt, rewritten by every call, and chapters.tar.gz from
#       a report: few files, as the GPU machine's transfer allows
# WORK  checkpoints/, records/ and logs/ of the training processes (default runs/seeds, git-ignored): `train` again
#       resumes whatever had not finished.
#
# Environment: run from the repository root. Without tqdm/hyperopt importable, the wheels of
# shared/device-wheels are installed from .whl/ into /tmp/site; SEQUNET_DATA_MIRROR defaults to the first of
# .devdata, ../shared/data with a MANIFEST.md. Set SEQUNET_GIT_COMMIT so that the records name the commit.
#   SESSION     1, 2 or 3: the cells of that session of the plan above
#   CELLS       "TASK:ARCH ..." (or TASK:ARCH:SEED for one seed) instead of a session (default: all 12 cells)
#   SEEDS       default "1111 1 2"
#   HAVE        folders of finished records besides WORK/records (default "results/published results/paper";
#               empty: none)
#   TIME_LIMIT  seconds each process may train in this call before it stops resumably (default 450: with the
#               start-up (~20 s), a finishing run's last evaluation (~40-70 s for char/word) and the packing, a call
#               ends within the device tool's 600 s)
#   CUDA_GRAPHS 0 trains with --no-cuda-graphs; MPS 0 starts no MPS daemon
#   SCALE, DEVICE  for a dry run on a CPU: SCALE=smoke DEVICE=cpu (default paper, cuda)
# Every record of runs trained together names the contention in its notes ("trained side by side ..."), which the
# publishing code marks. Exit status: train: 0 every seed of the cells finished, 3 some stopped early (call again),
# 1 a failure (see the logs; a diverged run is not one), 2 bad arguments; status: 0; report: 0 every chapter ran,
# 1 one failed, 3 no task has both models of REPORT_SEED finished here.
set -u
usage="usage: benchmarks/table1_seeds.sh train|status|report OUT [WORK]"
mode=${1:?$usage}
out=${2:?$usage}
seeds=${SEEDS:-1111 1 2}
all="char_ptb:tcn char_ptb:sequnet word_ptb:tcn word_ptb:sequnet jsb:tcn jsb:sequnet nottingham:tcn
     nottingham:sequnet muse:tcn muse:sequnet piano_midi:tcn piano_midi:sequnet"
case ${SESSION:-} in
    "") cells=${CELLS:-$all} ;;
    1) cells="char_ptb:tcn char_ptb:sequnet" ;;
    2) cells="word_ptb:tcn word_ptb:sequnet" ;;
    3) cells="nottingham:tcn nottingham:sequnet" ;;
    *) echo "SESSION=$SESSION: expected 1, 2 or 3 (the plan in this script's header)" >&2; exit 2 ;;
esac
case $mode in train|status|report) ;; *) echo "$usage" >&2; exit 2 ;; esac
. "$(dirname "$0")/table1_common.sh"
use_dirs "$out" "${3:-runs/seeds}" records logs
use_device_copies || exit 1
read -ra have <<<"${HAVE-results/published results/paper}"
seeds() {       # todo | status: the seeds of the cells still to train, or each cell's seeds and their records
    "$python" -m sequnet.experiment.seeds "$1" --cells $cells --seeds $seeds --scale "$scale" \
        --have "${have[@]}" "$work/records"
}

report() {      # what comes back from the GPU machine: the status and one archive of records and logs
    seeds status | tee "$out/status.txt"
    tar -czf "$out/seeds.tar.gz" -C "$work" records logs
}

if [ "$mode" = status ]; then
    seeds status
    exit $?
fi
if [ "$mode" = report ]; then
    seed=${REPORT_SEED:-1}
    todo=$(seeds todo) || exit 2
    tasks=()
    for task in $(for cell in $cells; do echo "${cell%%:*}"; done | sort -u); do
        # both models of the task finished that seed here: a checkpoint in WORK, and the seed is not left to train
        ready=1
        for arch in tcn sequnet; do
            checkpoint=$work/checkpoints/$(run_name "$task" "$arch" "$seed").pt
            if [ ! -f "$checkpoint" ] || grep -qx "$task $arch $seed" <<<"$todo"; then
                ready=0
            fi
        done
        [ $ready = 1 ] && tasks+=("$task")
    done
    if [ ${#tasks[@]} = 0 ]; then
        echo "no task of these cells has both models of seed $seed finished in $work" >&2
        exit 3
    fi
    echo "reporting seed $seed of: ${tasks[*]}"
    rm -rf "$out/chapters"
    SEED=$seed TASKS="${tasks[*]}" bash "$(dirname "$0")/table1_paper.sh" report "$out/chapters" "$work"
    status=$?
    tar -czf "$out/chapters.tar.gz" -C "$out/chapters" . && rm -rf "$out/chapters"
    exit $status
fi
todo=$(seeds todo) || exit 2
if [ -z "$todo" ]; then
    echo "every seed of these cells has a finished record"
    report
    exit 0
fi
start_mps
n_runs=$(wc -l <<<"$todo")
extra=()
[ "${CUDA_GRAPHS:-1}" = 0 ] && extra+=(--no-cuda-graphs)
note=$(contended_note "$n_runs")
[ -n "$note" ] && extra+=(--note "$note")
echo "training $n_runs runs side by side: $(tr '\n' ';' <<<"$todo")"
pids=(); records=()
while read -r task arch seed; do
    records+=("$work/records/$(run_name "$task" "$arch" "$seed").json")
    # sequnet.experiment.cli loads only what training needs (no soundfile on GPU images)
    "$python" -m sequnet.experiment.cli train "$task" "$arch" --seed "$seed" --scale "$scale" --device "$device" \
        --out "$work" --resume --no-progress --time-limit "${TIME_LIMIT:-450}" "${extra[@]}" \
        >>"$work/logs/${task}_${arch}_seed$seed.log" 2>&1 &
    pids+=($!)
done <<<"$todo"
status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; rc=$?
    # The trainer exits 1 for a diverged run as for a failure; a divergence is a finished result (not retried), and
    # the call must still say 3 when the other runs stopped early (2026-12-03: the word Seq-U-Net's seed 2
    # diverged in a call whose other runs needed two more).
    if [ $rc = 1 ] && "$python" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["status"] != "diverged")' \
            "${records[$i]}" 2>/dev/null; then
        rc=0
    fi
    status=$(fold_status "$status" "$rc")
done
report
if [ $status = 0 ] && [ -n "${REPORT_SEED:-}" ]; then
    # The session's seeds are done and this command has time left: the chapters now, on this machine (a fourth
    # command would not fit the session), bounded so that the call still ends within CALL_S; the seeds' records
    # are already packed above.
    left=$(( ${CALL_S:-570} - SECONDS ))
    if [ $left -gt 60 ]; then
        timeout "$left" bash "$0" report "$out" "$work" ||
            echo "report: exit status $? (chapters.tar.gz may be partial or missing)"
    else
        echo "report: only $left s left of CALL_S; run \`$0 report\` on this machine if the session has time"
    fi
fi
exit $status
