# Sourced, not run, by the scripts that run on the GPU machine (gpu_test.sh, piano_run.sh, piano_gpu_call.sh,
# table1_common.sh). That machine has no network and no package index: what its Python lacks comes from the
# wheelhouse .whl/ (shared/device-wheels plus the project's extra wheels, made by benchmarks/device_prep.sh),
# installed once per machine into /tmp/site.
#
#   device_wheels PYTHON MODULE...   make the modules importable by PYTHON: as they are, else from /tmp/site (an
#                                    earlier call on this machine installed them), else by installing .whl/ there
#                                    now. /tmp/site joins PYTHONPATH when it is needed. Returns non-zero, saying
#                                    why, when the modules are missing and there is no .whl/ to install them from.
device_wheels() {
    local python=$1; shift
    local check
    check="import $(IFS=,; echo "$*")"
    "$python" -c "$check" 2>/dev/null && return 0
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    "$python" -c "$check" 2>/dev/null && return 0
    ls .whl/*.whl >/dev/null 2>&1 || {
        echo "$python cannot import $* and there is no .whl/ wheelhouse here (benchmarks/device_prep.sh makes it)" >&2
        return 1; }
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl
}
