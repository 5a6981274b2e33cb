#!/usr/bin/env bash
# The checks only a GPU can run (issue #4, "On the GPU"), prepared to fit a short device lease:
#   tests    the whole test suite with DEVTENSOR_SYNC=1: the generated op suite runs on cuda next to cpu,
#            every kernel is synchronized and a failure names its op (the cuda-marked tests included);
#   memcheck compute-sanitizer memcheck over our kernels' tests (tests/test_cuda_kernels.py);
#   bench    `devtensor bench` on cuda for the issue's targets (SGEMM 4096^3 vs cuBLAS, sum 2^28 vs CUB,
#            row softmax vs copy bandwidth, conv2d vs cuDNN with TF32 off, CNN/MLP training steps vs
#            PyTorch eager), PyTorch and CuPy timed beside devtensor in the same run.
# Each step's log, env.txt (GPU, driver, CUDA, CuPy, PyTorch, numpy, numba) and bench.json / bench.md go
# to $OUT/<date>-<gpu>/ (the device tool brings $OUT back) or, without $OUT, bench/results/<date>-<gpu>/;
# commit that folder and copy bench.md's cuda table into bench/README.md.
#
# Usage (repository root, the machine's python3, which holds torch and cupy; nothing is installed):
#   bash ci/gpu_check.sh [tests] [memcheck] [bench]     (no argument: all three, ~9 minutes at most)
# Exit status: 0 all steps passed, 1 a step failed (the others still ran), 3 no GPU here.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "ci/gpu_check.sh: no GPU here (nvidia-smi sees none); run it where the device tool lends one" >&2
    exit 3
fi
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(tests memcheck bench)
for s in "${steps[@]}"; do
    case $s in tests|memcheck|bench) ;; *) echo "ci/gpu_check.sh: unknown step '$s' (tests, memcheck, bench)" >&2; exit 2 ;; esac
done

gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | tr -c 'A-Za-z0-9.\n-' '-')
dest=${OUT:-bench/results}/$(date -u +%Y-%m-%d)-${gpu}
mkdir -p "$dest"
{
    date -u
    nvidia-smi
    "$PY" -c "import platform, numpy, numba, cupy, torch
print('python', platform.python_version(), '| numpy', numpy.__version__, '| numba', numba.__version__)
print('cupy', cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(),
      '| driver', cupy.cuda.runtime.driverGetVersion())
print('torch', torch.__version__, '| cuDNN', torch.backends.cudnn.version())
import devtensor; print('devtensor', devtensor.__version__, devtensor.backends.available())"
} > "$dest/env.txt" 2>&1

status=0
step() {  # name, time limit (s), command...
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS rc
    timeout "$limit" "$@" > "$dest/$name.log" 2>&1
    rc=$?
    echo "$name: exit $rc after $((SECONDS - t0)) s: $(tail -n 1 "$dest/$name.log")" | tee -a "$dest/summary.txt"
    [ "$rc" -eq 0 ] || status=1
}

for s in "${steps[@]}"; do
    case $s in
    tests)
        step tests 270 env DEVTENSOR_SYNC=1 "$PY" -m pytest -q -p no:cacheprovider -rs tests ;;
    memcheck)
        step memcheck 150 compute-sanitizer --tool memcheck --error-exitcode 99 \
            "$PY" -m pytest -q -p no:cacheprovider -x tests/test_cuda_kernels.py ;;
    bench)
        step bench 150 "$PY" -m devtensor bench --devices cuda \
            --ops matmul,conv2d,conv2d_backward,sum,softmax,cross_entropy,adam,train_cnn,train_mlp \
            --repeats 5 --min-time 0.1 --json "$dest/bench.json" --markdown "$dest/bench.md" --no-progress ;;
    esac
done

echo "results in $dest"
cat "$dest/summary.txt"
[ -f "$dest/bench.md" ] && tail -n 45 "$dest/bench.md"
exit $status
