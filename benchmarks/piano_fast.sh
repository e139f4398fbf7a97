#!/usr/bin/env bash
# Issue 7's speed-ups of the piano training step (benchmarks/training.py), every combination on one GPU:
#
#   benchmarks/piano_fast.sh OUT
#
# piano_audio at batch 16 and 2, steps replayed from CUDA graphs, in float32 and under bf16 autocast, each
# without and with channels-last activations (--channels-last both) and the fused gated residual
# (--fused-gate). The fused gate applies to the Seq-U-Net only, so its runs measure only that model; the
# WaveNet baseline is measured in both layouts for the ratios.
#
#   OUT/piano-fast-fp32.json        float32: WaveNet and Seq-U-Net, plain and channels-last
#   OUT/piano-fast-fp32-fused.json  float32: Seq-U-Net with the fused gate, plain and channels-last
#   OUT/piano-fast-bf16.json        the same under bf16 autocast
#   OUT/piano-fast-bf16-fused.json
#   OUT/piano-fast.log              everything printed
#
# The fused gate's Triton kernels run in separate processes, so a failure there leaves the other files.
# Run from the repository root with sequnet importable (PYTHONPATH=.). About 3 minutes on an H200.
# DEVICE=cpu (no CUDA graphs there) with OPTIONS="--quick --steps 1 --warmup 1" is a smoke run on the CPU;
# OPTIONS go last, so they override the script's.
set -u -o pipefail
out=${1:?usage: benchmarks/piano_fast.sh OUT}
python=${PYTHON:-python3}
mkdir -p "$out"
log=$out/piano-fast.log
bench() { echo "== training.py $*" | tee -a "$log"; "$python" benchmarks/training.py "$@" 2>&1 | tee -a "$log"; }
device=${DEVICE:-cuda}
graphs=; [ "$device" = cuda ] && graphs=--cuda-graphs
piano="--device $device --tasks piano_audio --piano-batches 16 2 $graphs --steps 10 --warmup 4 --channels-last both"
fused="--fused-gate --archs sequnet"
extra=${OPTIONS:-}
status=0
# shellcheck disable=SC2086  # $piano, $fused and $extra are lists of options
{
    bench $piano --out "$out/piano-fast-fp32.json" $extra || status=1
    bench $piano $fused --out "$out/piano-fast-fp32-fused.json" $extra || status=1
    bench $piano --bf16 --out "$out/piano-fast-bf16.json" $extra || status=1
    bench $piano $fused --bf16 --out "$out/piano-fast-bf16-fused.json" $extra || status=1
}
exit $status
