#!/usr/bin/env bash
# GPU check for bitscout (issues 6 and 16): one prepared script for a machine with an NVIDIA GPU.
#
#   bash benchmarks/gpu_check.sh             # from the repository root, on the GPU machine
#   bash benchmarks/gpu_check.sh --dry-run   # anywhere: the same steps on the CPU, tiny sizes
#
# What it does, writing everything under $OUT (default: ./gpu_check_out):
#   1. records the machine (nvidia-smi, CPU, Python) in machine.txt;
#   2. finds a Python 3.11 that can import torch (preferring one with CUDA); if bitscout's
#      dependencies are missing there, makes a venv in $VENV (default
#      /tmp/bitscout-gpu-venv, --system-site-packages so that a CUDA torch is kept) and
#      runs `pip install -e .` (may fail without network; the script says so and goes on
#      with PYTHONPATH=src);
#   3. runs the gpu-marked tests (tests/test_gpu.py) -> tests_gpu.txt, tests_gpu.xml;
#   4. runs benchmarks/gpu_bench.py -> gpu_bench.txt/.json: compiled fake-quant / compiled
#      float forward of a ResNet-20-size CNN over 10,000 synthetic CIFAR-size inputs
#      (target <= 1.1x), and configurations per second of the exhaustive engine on the
#      digits MLP (many configurations per launch) with its mismatches against trial by
#      trial;
#   5. runs `benchmarks/speed.py --quick --device cuda --only trials exhaustive`
#      -> speed_cuda.txt/.json (trial / float forward on the device, exhaustive);
#   6. writes summary.txt (what was found, each step's exit status and duration, the
#      figures' lines).
# The whole script ends within TOTAL_LIMIT_S (default 570 s, under 10 minutes): each step
# has its own limit and gets no more than what is left; a step with less than 20 s left
# is skipped and the summary says so. Exit status: 0 when the gpu tests and gpu_bench.py
# passed on a CUDA device (in a dry run: on the CPU), 1 otherwise.
#
# --dry-run: no GPU needed. Uses the Python found in step 2 without installing anything,
# runs the gpu tests on the CPU (BITSCOUT_GPU_TEST_DEVICE=cpu), gpu_bench.py --dry-run
# (tiny sizes, the aot_eager compile backend), and skips speed.py. tests/test_gpu_check.py
# runs the Python part of this dry run so that the script cannot rot unseen.

set -u
cd "$(dirname "$0")/.."
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg (use --dry-run or nothing)" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$PWD/gpu_check_out}"
VENV="${VENV:-/tmp/bitscout-gpu-venv}"
TOTAL_LIMIT_S="${TOTAL_LIMIT_S:-570}"
STARTED=$(date +%s)
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$SUMMARY"; }
left() { echo $((TOTAL_LIMIT_S - ($(date +%s) - STARTED))); }
[ "$DRY_RUN" -eq 1 ] && say "DRY RUN: the steps on the CPU with tiny sizes; no figure here is a GPU figure"

# ---- 1. the machine ------------------------------------------------------------------
{
  echo "date: $(date -u)"
  echo "host: $(hostname)"
  echo "nproc: $(nproc)"
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)"
  grep -m1 "model name" /proc/cpuinfo || true
  echo "--- nvidia-smi"
  nvidia-smi 2>&1 || echo "nvidia-smi not available"
} > "$OUT/machine.txt" 2>&1
GPU_NAME="$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"
say "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null); GPU: ${GPU_NAME:-none found by nvidia-smi}"

# ---- 2. a Python with torch -----------------------------------------------------------
probe() {  # prints "torch_version cuda_available python_version" or nothing
  "$1" -c "import torch, sys; print(torch.__version__, torch.cuda.is_available(), '%d.%d' % sys.version_info[:2])" 2>/dev/null
}
PY=""
FOUND=""
for cand in "${PYTHON:-}" .venv/bin/python "$VENV/bin/python" python3.11 python3 python; do
  [ -n "$cand" ] || continue
  command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
  info="$(probe "$cand")"
  [ -n "$info" ] || { say "python $cand: cannot import torch"; continue; }
  say "python $cand: torch $(echo "$info" | cut -d' ' -f1), cuda available: $(echo "$info" | cut -d' ' -f2), python $(echo "$info" | cut -d' ' -f3)"
  if [ -z "$PY" ] || { [ "$(echo "$info" | cut -d' ' -f2)" = "True" ] && [ "$(echo "$FOUND" | cut -d' ' -f2)" != "True" ]; }; then
    PY="$cand"; FOUND="$info"
  fi
done
if [ -z "$PY" ]; then
  say "no Python here can import torch; nothing more to check"
  exit 1
fi
CUDA="$(echo "$FOUND" | cut -d' ' -f2)"
say "using $PY (torch $(echo "$FOUND" | cut -d' ' -f1), cuda available: $CUDA)"

DEPS="import optuna, pydantic, numpy, sklearn, matplotlib, tqdm, pandas, pyarrow, tomli_w, psutil, pytest"
if [ "$DRY_RUN" -eq 0 ] && ! "$PY" -c "$DEPS" 2>/dev/null; then
  say "bitscout's dependencies are missing for $PY; making $VENV (--system-site-packages) and running pip install -e ."
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv --system-site-packages "$VENV" >>"$OUT/pip.txt" 2>&1 || say "venv creation failed (see pip.txt)"
  fi
  if [ -x "$VENV/bin/python" ]; then
    timeout 90 "$VENV/bin/python" -m pip install -e . pytest >>"$OUT/pip.txt" 2>&1 \
      && say "pip install -e . done" || say "pip install -e . failed (see pip.txt; no network?)"
    if "$VENV/bin/python" -c "$DEPS" 2>/dev/null; then
      PY="$VENV/bin/python"
      say "using $PY: torch $(probe "$PY")"
    fi
  fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
"$PY" -c "import bitscout, torch; print('bitscout from', bitscout.__file__); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')" \
  > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt" >> "$SUMMARY"

step() {  # step NAME LIMIT_S LOGFILE COMMAND...: runs within min(LIMIT_S, time left)
  local name="$1" limit="$2" log="$3"; shift 3
  local budget start end rc
  budget=$(left)
  [ "$budget" -lt "$limit" ] && limit="$budget"
  if [ "$limit" -lt 20 ]; then
    say "$name: SKIPPED (only ${budget} s left of TOTAL_LIMIT_S=${TOTAL_LIMIT_S})"
    return 125
  fi
  start=$(date +%s)
  timeout "$limit" "$@" > "$log" 2>&1
  rc=$?
  end=$(date +%s)
  say "$name: exit $rc in $((end - start)) s (limit $limit s; log: $(basename "$log"))$([ $rc -eq 124 ] && echo ' TIMED OUT')"
  return $rc
}

# ---- 3. the gpu tests ---------------------------------------------------------------------
if [ "$DRY_RUN" -eq 1 ]; then
  export BITSCOUT_GPU_TEST_DEVICE=cpu
fi
step "gpu tests" 150 "$OUT/tests_gpu.txt" "$PY" -m pytest tests/test_gpu.py -m gpu -v -rs -p no:cacheprovider \
  --junitxml="$OUT/tests_gpu.xml"
TESTS_RC=$?
tail -5 "$OUT/tests_gpu.txt" | tee -a "$SUMMARY"

# ---- 4. compiled fake-quant and configurations per second --------------------------------
if [ "$DRY_RUN" -eq 1 ]; then
  step "gpu_bench.py --dry-run" 240 "$OUT/gpu_bench.txt" "$PY" benchmarks/gpu_bench.py --dry-run --json "$OUT/gpu_bench.json"
  BENCH_RC=$?
elif [ "$CUDA" = "True" ]; then
  step "gpu_bench.py --device cuda" 240 "$OUT/gpu_bench.txt" "$PY" benchmarks/gpu_bench.py --device cuda --json "$OUT/gpu_bench.json"
  BENCH_RC=$?
else
  say "torch sees no CUDA device: gpu_bench.py is not run (use --dry-run to check the script on a CPU)"
  BENCH_RC=1
fi
[ -f "$OUT/gpu_bench.txt" ] && grep -E "^[0-9]\.|error|Error" "$OUT/gpu_bench.txt" | tee -a "$SUMMARY"

# ---- 5. speed.py on the device -----------------------------------------------------------------
if [ "$DRY_RUN" -eq 0 ] && [ "$CUDA" = "True" ]; then
  step "speed.py --quick --device cuda" 150 "$OUT/speed_cuda.txt" \
    "$PY" benchmarks/speed.py --quick --device cuda --only trials exhaustive --json "$OUT/speed_cuda.json"
  [ -f "$OUT/speed_cuda.txt" ] && { echo "--- speed_cuda"; grep -E "ratio|trial |float forward|exhaustive|MET|MISSED|gpu:" "$OUT/speed_cuda.txt"; } >> "$SUMMARY"
fi

say "done in $(($(date +%s) - STARTED)) s; results in $OUT"
if [ "$TESTS_RC" -eq 0 ] && [ "$BENCH_RC" -eq 0 ] && { [ "$DRY_RUN" -eq 1 ] || [ "$CUDA" = "True" ]; }; then
  exit 0
fi
exit 1
