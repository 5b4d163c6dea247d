#!/usr/bin/env bash
# GPU check of the correlation operator: Linux, NVIDIA GPU, CUDA 13, no internet. About 5-8 minutes, most of
# it Jittor's first (CPU + CUDA) core compile.
#
#   tools/gpu_check.sh            # log also goes to $OUT/gpu_check.log when OUT is set
#
# 1. Jittor comes from an overlay folder put first on PYTHONPATH ($SBVSR_OVERLAY, default
#    /tmp/sbvsr-jittor-overlay); the system's Python packages are never modified:
#    - Jittor missing: jittor, jittor_utils and the pure-Python deps (astunparse, six, jittor-offline) are
#      installed into the overlay with `pip --target` from the .whl / sdist files in <repo>/.whl (no index);
#    - Jittor installed: its package folder is copied into the overlay;
#    - numpy<2 (Jittor 1.3.11 silently miscomputes under numpy 2) and pytest go there too when missing.
# 2. CUDA 13 removed cudaDeviceProp::computeMode and ::clockRate, which Jittor 1.3.11's helper_cuda.h reads
#    (only for picking a device). The overlay COPY is patched (computeMode -> cudaComputeModeDefault,
#    clockRate -> 1); the original stays untouched. Revert: rm -rf the overlay folder.
#    Jittor 1.3.11 looks for cuDNN 8 library names; cuDNN 9 has others: conv_opt=1 makes it skip cuDNN.
# 3. Prints the GPU (nvidia-smi), runs the correlation tests on CUDA, the benchmark, then the hook
#    `pytest tests -k gpu` (model GPU checks). Exit status: non-zero when a step failed.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OVERLAY=${SBVSR_OVERLAY:-/tmp/sbvsr-jittor-overlay}
PY=${PYTHON:-python3}
LOG=${OUT:-/tmp}/gpu_check.log
cd "$REPO"
failed=()
step() { echo; echo "=== $1"; shift; "$@" || { echo "!!! FAILED (exit $?): $*"; failed+=("$*"); }; }

has_module() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)"; }

prepare_overlay() {
    mkdir -p "$OVERLAY"
    local wanted=()
    if [ -d "$OVERLAY/jittor" ]; then
        :
    elif has_module jittor; then
        local installed
        installed=$("$PY" -c 'import importlib.util as u, os; print(os.path.dirname(u.find_spec("jittor").origin))')
        cp -r "$installed" "$OVERLAY/jittor"
    else
        wanted+=(jittor jittor-offline astunparse six)
    fi
    [ -d "$OVERLAY/numpy" ] || "$PY" -c 'import numpy, sys; sys.exit(int(numpy.__version__.split(".")[0]) >= 2)' \
        2>/dev/null || wanted+=("numpy<2")
    has_module pytest || [ -d "$OVERLAY/pytest" ] || wanted+=(pytest)
    [ ${#wanted[@]} -eq 0 ] || "$PY" -m pip install -q --no-index --find-links "$REPO/.whl" --no-build-isolation \
        --target "$OVERLAY" "${wanted[@]}"
}

patch_for_cuda13() {
    local header="$OVERLAY/jittor/extern/cuda/inc/helper_cuda.h"
    local release
    release=$("$nvcc_path" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
    if [ "${release:-0}" -ge 13 ] && grep -q 'deviceProp\.\(computeMode\|clockRate\)' "$header"; then
        sed -i 's/deviceProp\.computeMode/cudaComputeModeDefault/g; s/deviceProp\.clockRate/1/g' "$header"
        echo "patched for CUDA $release: $header"
    fi
}

warm_up() {  # Jittor may exit 0 after rebuilding jit_utils without running anything: retry until it computes
    for _ in 1 2 3; do
        if "$PY" -c "from jittor_sbvsr import runtime; jt = runtime.init(); assert jt.flags.use_cuda, 'not on CUDA'
assert (jt.ones(3) * 2).sum().item() == 6; print('jittor ready:', runtime.report())" | grep "jittor ready"; then
            return 0
        fi
    done
    return 1
}

gpu_tests() {  # pytest exit 5: no test matched -k gpu (yet)
    "$PY" -m pytest -q -p no:cacheprovider tests -k gpu
    local rc=$?
    [ $rc = 5 ] || return $rc
}

export nvcc_path=${nvcc_path:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
export PATH="$(dirname "$nvcc_path"):$PATH"
export PYTHONPATH="$OVERLAY:$REPO${PYTHONPATH:+:$PYTHONPATH}"
export conv_opt=${conv_opt:-1} use_nccl=${use_nccl:-0} use_cutt=${use_cutt:-0}
export SBVSR_CORRELATION=${SBVSR_CORRELATION:-auto}

main() {
    step "GPU" nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv
    step "overlay with Jittor ($OVERLAY)" prepare_overlay
    step "CUDA 13 patch" patch_for_cuda13
    step "Jittor warm-up (first run compiles Jittor's core)" warm_up
    if [ ${#failed[@]} -eq 0 ]; then
        step "correlation tests on CUDA" "$PY" -m pytest -q -p no:cacheprovider tests/test_correlation.py \
            tests/test_correlation_cuda_source.py
        step "correlation benchmark" "$PY" tools/bench_correlation.py
        step "pytest tests -k gpu (hook for the model's GPU checks)" gpu_tests
    fi
    echo
    [ ${#failed[@]} -eq 0 ] && echo "GPU CHECK PASSED (log: $LOG)" && return 0
    printf 'GPU CHECK FAILED: %s\n' "${failed[@]}"
    return 1
}

mkdir -p "$(dirname "$LOG")"
main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
