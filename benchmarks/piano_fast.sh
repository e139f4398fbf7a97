#!/usr/bin/env bash
# The piano training step of both audio models with every combination of the speed-ups, on one GPU:
#
#   benchmarks/piano_fast.sh OUT
#
# piano_audio at batch 16 and 2, steps replayed from CUDA graphs, in float32 (TF32 convolutions, PyTorch's
# default) and under bf16 autocast, each with channels-last activations off and on and the fused gate off and on
# (--channels-last both --fused-gate both). Both switches apply to both models (WaveNet's fused gate is the gate
# alone), so each variant's Seq-U-Net/WaveNet ratio compares the two with the same speed-ups; the rows with both
# switches off give the plain ratio.
#
#   OUT/piano-fast-fp32.json        float32: both models, four switch variants, batch 16 and 2
#   OUT/piano-fast-bf16.json        the same under bf16 autocast
#   OUT/piano-fast.log              everything printed
#
# Run from the repository root with sequnet importable (PYTHONPATH=.). About 5 minutes on an H200.
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
piano="--device $device --tasks piano_audio --piano-batches 16 2 $graphs --steps 10 --warmup 4"
piano="$piano --channels-last both --fused-gate both"
extra=${OPTIONS:-}
status=0
# shellcheck disable=SC2086  # $piano and $extra are lists of options
{
    bench $piano --out "$out/piano-fast-fp32.json" $extra || status=1
    bench $piano --bf16 --out "$out/piano-fast-bf16.json" $extra || status=1
}
exit $status
