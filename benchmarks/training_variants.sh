#!/usr/bin/env bash
# The training-step benchmark (benchmarks/training.py) in the variants that issue 7 compares, on one GPU:
#
#   benchmarks/training_variants.sh OUT
#
#   OUT/training-graphs.json        every Table 1 pair, fp32, steps replayed from CUDA graphs (as the trainer does)
#   OUT/training-eager.json         piano at batch 2 and 16, fp32, eager
#   OUT/training-onehot.json        the same with one-hot inputs through the first convolution (the input path
#                                   before the weight lookup), to time the two paths on one machine
#   OUT/training-piano-bf16.json    piano at batch 2 and 16, bf16 autocast, CUDA graphs
#   OUT/training-piano-compile.json piano, bf16 autocast, torch.compile (skipped after COMPILE_LIMIT seconds)
#   OUT/training.profile.txt        torch.profiler's operator table of the piano pair at batch 16 (fp32, eager)
#   OUT/training-variants.log       everything printed
#
# Run from the repository root with sequnet importable (PYTHONPATH=.). About 5 minutes on an H200.
set -u
out=${1:?usage: benchmarks/training_variants.sh OUT}
python=${PYTHON:-python3}
mkdir -p "$out"
log=$out/training-variants.log
bench() { echo "== training.py $*" | tee -a "$log"; "$python" benchmarks/training.py "$@" 2>&1 | tee -a "$log"; }
status=0
bench --device cuda --cuda-graphs --out "$out/training-graphs.json" || status=1
bench --device cuda --tasks piano_audio --out "$out/training-eager.json" || status=1
bench --device cuda --tasks piano_audio --one-hot-input --out "$out/training-onehot.json" || status=1
bench --device cuda --tasks piano_audio --bf16 --cuda-graphs --out "$out/training-piano-bf16.json" || status=1
bench --device cuda --tasks piano_audio --profile 5 --out "$out/training.json" || status=1
echo "== torch.compile, bf16 (at most ${COMPILE_LIMIT:-240} s)" | tee -a "$log"
timeout "${COMPILE_LIMIT:-240}" "$python" benchmarks/training.py --device cuda --tasks piano_audio --bf16 --compile \
    --steps 10 --out "$out/training-piano-compile.json" 2>&1 | tee -a "$log"
exit $status
