# Shell functions shared by benchmarks/table1_{paper,seeds,hpo}.sh (sourced, not run), and the settings they all
# read from the environment: PYTHON (the interpreter), SCALE and DEVICE (SCALE=smoke DEVICE=cpu for a dry run on a
# CPU; default paper, cuda).
python=${PYTHON:-python3}
scale=${SCALE:-paper}
device=${DEVICE:-cuda}

# use_dirs OUT WORK [SUBFOLDER...]: create OUT and WORK (and WORK/SUBFOLDER...) and set out and work to their
# absolute paths (the runs are started elsewhere than the notebooks' kernels).
use_dirs() {
    out=$1 work=$2
    shift 2
    mkdir -p "$out" "$work" "${@/#/$work/}"
    out=$(cd "$out" && pwd)
    work=$(cd "$work" && pwd)
}

# Start the CUDA MPS daemon (MPS=1, the default, where nvidia-cuda-mps-control exists and the runs use the GPU), so
# that the small models' kernels share the GPU instead of taking turns. Sets mps=1 when MPS is in use.
start_mps() {
    mps=0
    [ "${MPS:-1}" = 1 ] && [ "$device" != cpu ] && command -v nvidia-cuda-mps-control >/dev/null || return 0
    nvidia-cuda-mps-control -d 2>/dev/null && echo "started the CUDA MPS daemon"
    mps=1                                  # started now, or already running from an earlier call
}

# The note each record of N processes trained together gets (none for one process): the publishing code marks
# records whose notes say "side by side" as contended, their time per step being no cost comparison.
contended_note() {
    [ "$1" -gt 1 ] || return 0
    local where="on one GPU"
    [ "$device" = cpu ] && where="on one CPU"
    [ "${mps:-0}" = 1 ] && where="$where under CUDA MPS"
    # (the checkpoint keeps the note, so a record written by a later call of fewer processes still says it)
    echo "trained side by side with other runs ($1 training processes $where in a call that trained some of its" \
         "epochs), so its time per step includes contention: benchmarks/training.py gives the uncontended costs"
}

# The status of runs so far ($1) with one more run's exit status ($2): 0 when every one exited 0, 3 when some
# stopped early (resumable) and none failed, 1 when any failed.
fold_status() {
    if [ "$2" = 3 ]; then [ "$1" = 0 ] && echo 3 || echo "$1"; elif [ "$2" != 0 ]; then echo 1; else echo "$1"; fi
}

# Wait for the given process ids; return their folded status (fold_status).
wait_all() {
    local status=0 pid
    for pid in "$@"; do
        wait "$pid"
        status=$(fold_status "$status" $?)
    done
    return "$status"
}

# A run's file name (record, checkpoint): TASK_ARCH, plus _seedN for a seed other than the preset's 1111
# (sequnet.experiment.scales.run_name).
run_name() {
    if [ "$3" = 1111 ]; then echo "${1}_$2"; else echo "${1}_${2}_seed$3"; fi
}

# The GPU machine has no network: where there is a .whl/ wheelhouse, make the packages training and the search
# need importable from it (device_wheels.sh); point SEQUNET_DATA_MIRROR at the first of .devdata,
# ../shared/data that holds a MANIFEST.md unless it is set.
. "$(dirname "${BASH_SOURCE[0]}")/device_wheels.sh"
use_device_copies() {
    if ls .whl/*.whl >/dev/null 2>&1; then
        device_wheels "$python" tqdm hyperopt || return 1
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
    if [ -z "${SEQUNET_DATA_MIRROR:-}" ]; then
        local d
        for d in .devdata ../shared/data; do
            if [ -f "$d/MANIFEST.md" ]; then export SEQUNET_DATA_MIRROR=$(cd "$d" && pwd); break; fi
        done
    fi
}
