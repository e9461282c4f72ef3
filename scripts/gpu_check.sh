#!/usr/bin/env bash
# scripts/gpu_check.sh — the whole GPU check in one command, for a short loan of one GPU.
#
#   scripts/gpu_check.sh [RESULTS_FILE]      (default: $OUT/gpu_check.txt when $OUT is set,
#                                             else benchmarks/results/gpu_check.txt)
#
# Steps, each time-boxed with `timeout` and recorded (PASS / FAIL rc=N / TIMEOUT / SKIPPED)
# whatever the previous ones did, inside an overall budget of $GPU_CHECK_BUDGET seconds
# (default 460 s: the device tool allows ~8 minutes for the command):
#   1. probe   : nvidia-smi (device name, driver, memory), date, python, torch if importable
#   2. build   : SHARDOPT_CUDA=1 build in place, only for the GPU's own arch (fast nvcc)
#   3. tests   : pytest -m cuda (every CUDA-marked test)
#   4. bench   : benchmarks/bench_optim.py --device cuda (fused Adam/AdamW/SGD vs the measured
#                device-to-device copy bandwidth, vs torch's fused Adam if torch has CUDA)
#   5. train   : examples/train_sharded.py on one rank, NCCL, cuda:0 (sharded fwd + bwd +
#                ShardedOptimizer step; exits non-zero if it disagrees with the unsharded run)
# With no CUDA device every step after the probe is SKIPPED ("no CUDA device"), the results
# file is still written and the exit status is 0 (GPU_CHECK_ASSUME_GPU=1 runs the steps
# anyway, to dry-run this script's own machinery).  Otherwise the exit status is the number
# of failed steps.  Why one file: the device tool copies back whatever lies under $OUT, and
# one text file with device, date and figures is what RESULTS.md needs.
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
if [ $# -ge 1 ]; then
    RESULTS="$1"
elif [ -n "${OUT:-}" ]; then
    RESULTS="$OUT/gpu_check.txt"
else
    RESULTS="$ROOT/benchmarks/results/gpu_check.txt"
fi
mkdir -p "$(dirname "$RESULTS")" || exit 2
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")" || exit 2
BUDGET="${GPU_CHECK_BUDGET:-460}"
START=$(date +%s)
FAILED=0

say() { echo "$*" | tee -a "$RESULTS"; }

# run_step NAME LIMIT_S CMD...: runs CMD under timeout (never past the overall budget),
# appends its status and the tail of its output to the results file.
run_step() {
    local name="$1" limit="$2" left rc t0 t1 status
    shift 2
    left=$(( BUDGET - ($(date +%s) - START) ))
    if [ "$left" -lt 10 ]; then
        say "== $name: SKIPPED (overall budget of ${BUDGET}s spent)"
        FAILED=$((FAILED + 1))
        return 1
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    t0=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$WORK/$name.log" 2>&1
    rc=$?
    t1=$(date +%s)
    case $rc in
        0) status=PASS ;;
        124 | 137) status="TIMEOUT after ${limit}s" ;;
        *) status="FAIL rc=$rc" ;;
    esac
    [ $rc -ne 0 ] && FAILED=$((FAILED + 1))
    say "== $name: $status ($((t1 - t0))s)"
    tail -n "${TAIL_LINES:-60}" "$WORK/$name.log" | sed 's/^/    /' >>"$RESULTS"
    return $rc
}

skip_step() { say "== $1: SKIPPED ($2)"; }

: >"$RESULTS"
say "shardopt GPU check — $(date -u '+%Y-%m-%d %H:%M:%S UTC'), host $(hostname)"
say "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (+ local changes)')"

# ---- 1. probe: what device, if any
HAVE_GPU=0
ARCH=""
if command -v nvidia-smi >/dev/null 2>&1 \
        && timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap \
            --format=csv,noheader >"$WORK/smi.txt" 2>&1 && [ -s "$WORK/smi.txt" ]; then
    HAVE_GPU=1
    say "device: $(head -n 1 "$WORK/smi.txt")  ($(wc -l <"$WORK/smi.txt") GPU(s) visible)"
    ARCH="$(head -n 1 "$WORK/smi.txt" | awk -F', ' '{print $4}' | tr -d '.' | tr -d ' ')"
elif [ -e /dev/nvidia0 ]; then
    HAVE_GPU=1
    say "device: /dev/nvidia0 present, nvidia-smi unavailable"
elif [ "${GPU_CHECK_ASSUME_GPU:-0}" = 1 ]; then
    HAVE_GPU=1   # dry-run of the step machinery on a machine without a GPU
    say "device: none found, GPU_CHECK_ASSUME_GPU=1: running the steps anyway"
else
    say "device: no CUDA device (no nvidia-smi output, no /dev/nvidia0)"
fi
PY="${PYTHON:-python3}"
say "python: $("$PY" -c 'import sys, numpy; print(sys.version.split()[0], "numpy", numpy.__version__)' 2>&1)"
say "torch: $(timeout 60 "$PY" -c 'import torch; print(torch.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tail -n 1)"

if [ "$HAVE_GPU" = 0 ]; then
    for s in build tests bench train; do skip_step "$s" "no CUDA device"; done
    say "result: skipped, no CUDA device (results file: $RESULTS)"
    rm -rf "$WORK"
    exit 0
fi

# ---- 2. build with CUDA, for this GPU's arch only (halves nvcc time; 80;90 otherwise)
case "$ARCH" in
    [0-9][0-9] | [0-9][0-9][0-9]) export SHARDOPT_CUDA_ARCHS="$ARCH" ;;
esac
# No network on the GPU machine: never let bootstrap try apt for Gloo (NCCL is the backend).
[ -f /usr/include/gloo/allreduce.h ] || export SHARDOPT_GLOO=0
export SHARDOPT_CUDA=1
say "build: SHARDOPT_CUDA=1 SHARDOPT_CUDA_ARCHS=${SHARDOPT_CUDA_ARCHS:-default} SHARDOPT_GLOO=${SHARDOPT_GLOO:-auto}"
BUILD_OK=0
run_step build 210 bash -c 'source scripts/bootstrap.sh && "$PY" -c "
import shardopt
print(\"built:\", shardopt.__file__, \"cuda available:\", shardopt.cuda.is_available(),
      \"devices:\", shardopt.cuda.device_count() if shardopt.cuda.is_available() else 0)
assert shardopt.cuda.is_available(), \"shardopt.cuda.is_available() is False after a CUDA build\"
"' && BUILD_OK=1
# bootstrap's environment (interpreter, PYTHONPATH) for the later steps, without rebuilding
PY="$(SHARDOPT_SKIP_BUILD=1 bash -c 'source scripts/bootstrap.sh >/dev/null 2>&1; echo "$PY"')"
[ -n "$PY" ] || PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

if [ "$BUILD_OK" = 0 ]; then
    for s in tests bench train; do skip_step "$s" "CUDA build failed"; done
else
    # ---- 3. CUDA-marked tests
    run_step tests 110 "$PY" -m pytest -m cuda -q --maxfail=5 -p no:cacheprovider tests
    # ---- 4. GPU optimizer benchmark (JSON beside the results file)
    run_step bench 120 "$PY" benchmarks/bench_optim.py --device cuda --repeat 10 \
        --out "$(dirname "$RESULTS")/bench_optim_gpu.json"
    # ---- 5. one-GPU sharded training (NCCL, 1 rank): correctness and wall time
    run_step train 75 "$PY" examples/train_sharded.py --nproc 1 --device cuda --steps 40 \
        --log-every 10
fi

say "result: $FAILED step(s) failed or timed out; $(( $(date +%s) - START ))s in all (results file: $RESULTS)"
rm -rf "$WORK"
exit "$FAILED"
