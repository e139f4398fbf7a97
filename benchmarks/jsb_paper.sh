#!/usr/bin/env bash
# The paper-scale proof run: JSB Chorales, TCN and Seq-U-Net, Table 3's settings, 100 epochs, on one GPU.
#
#   benchmarks/jsb_paper.sh OUT [WORK]
#
# OUT   receives records/jsb_tcn.json, records/jsb_sequnet.json and one log per model.
# WORK  holds the checkpoints (default runs/jsb_paper, git-ignored). A call that would overrun TIME_LIMIT stops
#       between epochs (status "interrupted", exit 3); the same command again resumes from WORK and finishes.
#
# Measured on an H200 (torch 2.11): about 1 s per epoch and model (3.5-4 ms per step, launch-bound), so the two
# models take about 4 minutes one after the other.
#
# Environment: run from the repository root with PYTHONPATH=. (or sequnet installed) and SEQUNET_DATA_MIRROR
# pointing at a copy of shared/data (only music/JSB_Chorales.mat is read).
#   TIME_LIMIT  seconds this call may train (default 540, inside a 10-minute command limit); each model stops
#               resumably before an epoch that would end later
#   PARALLEL    0 (default): one model after the other, so that step times do not contend; 1: both at once as
#               two processes on the one GPU (each gets TIME_LIMIT), about half the wall time
#   EPOCHS      override the 100 epochs (for a quick check; the record then says so); DEVICE (default cuda)
# Exit status: 0 both finished, 3 at least one stopped early (run again), 1 a failure (see the logs).
set -u
out=${1:?usage: benchmarks/jsb_paper.sh OUT [WORK]}
work=${2:-runs/jsb_paper}
python=${PYTHON:-python3}
limit=${TIME_LIMIT:-540}
mkdir -p "$out" "$work"

train() {   # train ARCH SECONDS: one model, resumable; its log goes to OUT
    local arch=$1 seconds=$2
    local extra=()
    [ -n "${EPOCHS:-}" ] && extra+=(--epochs "$EPOCHS")
    # sequnet.train_cli (not `python -m sequnet`) loads only what training needs: no soundfile on GPU images.
    "$python" -m sequnet.train_cli train jsb "$arch" --scale paper --device "${DEVICE:-cuda}" --out "$out" \
        --checkpoint "$work/jsb_$arch.pt" --resume --time-limit "$seconds" --no-progress "${extra[@]}" \
        >>"$out/jsb_$arch.log" 2>&1
}

if [ "${PARALLEL:-0}" = 1 ]; then
    train tcn "$limit" & tcn=$!
    train sequnet "$limit" & sequnet=$!
    wait $tcn; a=$?
    wait $sequnet; b=$?
else
    deadline=$((SECONDS + limit))
    train tcn "$limit"; a=$?
    left=$((deadline - SECONDS))
    if [ $left -ge 20 ]; then train sequnet $left; b=$?; else b=3; echo "no time left for sequnet" >>"$out/jsb_sequnet.log"; fi
fi
status=0
for rc in $a $b; do
    if [ "$rc" = 3 ]; then [ $status = 0 ] && status=3; elif [ "$rc" != 0 ]; then status=1; fi
done
tail -n 3 "$out/jsb_tcn.log" "$out/jsb_sequnet.log"
case $status in
    0) echo "both models finished: $out/records/" ;;
    3) echo "stopped early to stay within TIME_LIMIT=$limit s: run the same command again to resume" ;;
    *) echo "a run failed: see $out/jsb_*.log" ;;
esac
exit $status
