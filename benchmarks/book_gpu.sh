#!/usr/bin/env bash
# The book's GPU chapters and their generation figures in one device call (issues 19 and 16): the generation
# benchmark of both piano models side by side, then the complexity chapter (it measures Table 2's models on inputs
# of up to 229,372 samples, which a CPU cannot) and the generation chapter (its exactness check and speed table on
# this GPU, beside the benchmark's JSON just written), both executed at paper scale on the GPU, and the models
# chapter beside them.
#
#   SEQUNET_GIT_COMMIT=$(git rev-parse --short HEAD) bash benchmarks/book_gpu.sh $OUT
#       device tool: carry [".whl", ".devdata"] (benchmarks/device_prep.sh tests), timeout_s 600
#
# Then here, on a CPU:
#   cp OUT/generation-h200.json results/bench/          (after reading it: the chapter shows the newest)
#   mkdir -p build/paper && tar -xf OUT/chapters.tar -C build/paper
#   python -m sequnet.publish.promote build/paper complexity generation models --replace
# and, in the same session, the GPU suite that vouches for the figures (benchmarks/gpu_test.sh), committed with them.
#
# Each step is bounded so that the call ends within the tool's 600 s with what it has: the benchmark GEN_S seconds
# (default 150; 80 s on 2026-12-03), the chapters CHAPTER_S (default 330; the complexity chapter took 189 s on
# 2026-12-03, the generation chapter 7 s on a CPU).
# SCALE, DEVICE and GEN_ARGS make a dry run on a CPU: SCALE=smoke DEVICE=cpu GEN_ARGS="--tiny --modes eager --steps
# 32 --batches 1 --dtypes float32" (default paper, cuda, and the benchmark's arguments below).
# Exit status: 0 both done, 1 the wheels could not be installed, 4 a step failed or ran out of time (see
# OUT/book_gpu.log; whatever finished is in OUT).
set -u
out=${1:?usage: benchmarks/book_gpu.sh OUT}
mkdir -p "$out"
log=$out/book_gpu.log
export PYTHONPATH=$PWD:/tmp/site SEQUNET_DATA_MIRROR=${SEQUNET_DATA_MIRROR:-$PWD/.devdata}
. "$(dirname "${BASH_SOURCE[0]}")/device_wheels.sh"
device_wheels python3 papermill jupytext tqdm >>"$log" 2>&1 ||
    { echo "installing .whl/ failed (see $log)" >&2; exit 1; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee -a "$log"
status=0

# The generation benchmark: both models, graphs of 16 steps (the batch rule's kernels), batch 1 (one listener) and
# 64 (the issue's bf16 target), two clock cycles of 1,024 steps timed three times after a whole pattern period of
# warm-up (benchmarks/generation.py warms up at least the period with graphs).
start=$SECONDS
gen_default="--batches 1 64 --kernels auto --modes graphs --dtypes float32 bfloat16 --repeats 3 --cycles 2"
read -ra gen_args <<<"${GEN_ARGS:-$gen_default}"
timeout "${GEN_S:-150}" python3 benchmarks/generation.py --device "${DEVICE:-cuda}" "${gen_args[@]}" \
    --out "$out/generation-h200.json" >>"$log" 2>&1 || status=4
echo "generation benchmark: $((SECONDS - start)) s, status $status" | tee -a "$log"

# The chapters at paper scale on this GPU, in the layout of `sequnet run` (build/paper/NAME.ipynb and its folder),
# packed for the promotion here. The models chapter trains nothing and needs no GPU (6 s on a CPU), but runs here
# too, so that every chapter of the reader's book was executed on the machine the paper's models are measured on.
# The generation chapter shows results/bench/generation*.json: this machine's copy of the checkout gets the
# benchmark just measured, so the chapter and the committed JSON agree (at paper scale only: a dry run here must
# not replace the committed JSON).
if [ $status = 0 ] && [ "${SCALE:-paper}" = paper ]; then
    cp "$out/generation-h200.json" results/bench/generation-h200.json
fi
start=$SECONDS
build=build/${SCALE:-paper}
names=(complexity generation models)
for name in "${names[@]}"; do rm -rf "${build:?}/$name" "$build/$name.ipynb"; done
timeout "${CHAPTER_S:-330}" python3 -m sequnet run --scale "${SCALE:-paper}" --only "${names[@]}" --out "$build" \
    -p device "${DEVICE:-cuda}" >>"$log" 2>&1 || status=4
done=()
for name in "${names[@]}"; do [ -f "$build/$name.ipynb" ] && done+=("$name.ipynb" "$name"); done
[ ${#done[@]} -gt 0 ] && tar -cf "$out/chapters.tar" -C "$build" "${done[@]}"
echo "chapters (${done[*]}): $((SECONDS - start)) s, status $status" | tee -a "$log"
exit $status
