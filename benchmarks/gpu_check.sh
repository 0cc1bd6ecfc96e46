#!/usr/bin/env bash
# GPU check for bitscout (issue 6): one prepared script for a machine with an NVIDIA GPU.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# What it does, writing everything under $OUT (default: ./gpu_check_out):
#   1. records the machine (nvidia-smi, CPU, Python) in machine.txt;
#   2. finds a Python 3.11 that can import torch and says which torch it is and whether
#      torch.cuda.is_available(); it prefers one with CUDA. If bitscout's dependencies
#      are missing there, it makes a venv in $VENV (default /tmp/bitscout-gpu-venv) with
#      --system-site-packages (so a CUDA torch installed on the machine is kept) and runs
#      `pip install -e .` there, nothing else; without network that may fail, and the
#      script says so and goes on with PYTHONPATH=src;
#   3. runs the gpu-marked tests (tests/test_gpu.py) -> tests_gpu.txt, tests_gpu.xml;
#   4. runs `benchmarks/speed.py --quick --device cuda` -> speed_cuda.txt/.json, then the
#      same GPU-relevant sections on this machine's CPU for the trial rate against the CPU
#      -> speed_cpu.txt/.json;
#   5. writes summary.txt (what was found, each step's exit status and duration).
# Each step has a time limit (STEP_LIMIT_S, default 240 s) so the whole script ends
# within about 10 minutes even when a step hangs. The exit status is 0 when the gpu
# tests passed on a CUDA device, 1 otherwise.

set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
VENV="${VENV:-/tmp/bitscout-gpu-venv}"
STEP_LIMIT_S="${STEP_LIMIT_S:-240}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$SUMMARY"; }

# ---- 1. the machine ------------------------------------------------------------------
{
  echo "date: $(date -u)"
  echo "host: $(hostname)"
  echo "nproc: $(nproc)"
  grep -m1 "model name" /proc/cpuinfo || true
  echo "--- nvidia-smi"
  nvidia-smi 2>&1 || echo "nvidia-smi not available"
} > "$OUT/machine.txt" 2>&1
GPU_NAME="$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"
say "machine: $(nproc) CPUs; GPU: ${GPU_NAME:-none found by nvidia-smi}"

# ---- 2. a Python with torch -----------------------------------------------------------
probe() {  # prints "torch_version cuda_available" or nothing
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
say "using $PY (torch $(echo "$FOUND" | cut -d' ' -f1), cuda available: $(echo "$FOUND" | cut -d' ' -f2))"

DEPS="import optuna, pydantic, numpy, sklearn, mlxtend, matplotlib, tqdm, h5py, pandas, pyarrow, tomli_w, psutil, pytest"
if ! "$PY" -c "$DEPS" 2>/dev/null; then
  say "bitscout's dependencies are missing for $PY; making $VENV (--system-site-packages) and running pip install -e ."
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv --system-site-packages "$VENV" >>"$OUT/pip.txt" 2>&1 || say "venv creation failed (see pip.txt)"
  fi
  if [ -x "$VENV/bin/python" ]; then
    timeout "$STEP_LIMIT_S" "$VENV/bin/python" -m pip install -e . >>"$OUT/pip.txt" 2>&1 \
      && say "pip install -e . done" || say "pip install -e . failed (see pip.txt; no network?)"
    timeout 60 "$VENV/bin/python" -m pip install pytest >>"$OUT/pip.txt" 2>&1 || true
    if "$VENV/bin/python" -c "$DEPS" 2>/dev/null; then
      PY="$VENV/bin/python"
      say "using $PY: torch $(probe "$PY")"
    fi
  fi
fi
MISSING="$("$PY" - <<'EOF' 2>/dev/null
import importlib
names = "optuna pydantic numpy sklearn mlxtend matplotlib tqdm h5py pandas pyarrow tomli_w psutil pytest".split()
print(" ".join(n for n in names if importlib.util.find_spec(n) is None))
EOF
)"
[ -z "$MISSING" ] || say "still missing for $PY: $MISSING (the steps below will say what fails)"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export MPLBACKEND=Agg
"$PY" -c "import bitscout, torch; print('bitscout from', bitscout.__file__); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available()); print('device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')" \
  > "$OUT/versions.txt" 2>&1
cat "$OUT/versions.txt" >> "$SUMMARY"

step() {  # step NAME LOGFILE COMMAND...
  local name="$1" log="$2"; shift 2
  local start end rc
  start=$(date +%s)
  timeout "$STEP_LIMIT_S" "$@" > "$log" 2>&1
  rc=$?
  end=$(date +%s)
  say "$name: exit $rc in $((end - start)) s (log: $(basename "$log"))$([ $rc -eq 124 ] && echo ' TIMED OUT')"
  return $rc
}

# ---- 3. the gpu tests ---------------------------------------------------------------------
step "gpu tests" "$OUT/tests_gpu.txt" "$PY" -m pytest tests/test_gpu.py -m gpu -v -rs -p no:cacheprovider \
  --junitxml="$OUT/tests_gpu.xml"
TESTS_RC=$?
tail -5 "$OUT/tests_gpu.txt" | tee -a "$SUMMARY"

# ---- 4. the benchmark on the GPU, then the same sections on this machine's CPU -------------
if [ "$(echo "$FOUND" | cut -d' ' -f2)" = "True" ] || "$PY" -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  step "speed.py --quick --device cuda" "$OUT/speed_cuda.txt" \
    "$PY" benchmarks/speed.py --quick --device cuda --only trials naive exhaustive --json "$OUT/speed_cuda.json"
  step "speed.py --quick (cpu, same sections)" "$OUT/speed_cpu.txt" \
    "$PY" benchmarks/speed.py --quick --device cpu --only trials naive exhaustive --json "$OUT/speed_cpu.json"
  step "speed.py --quick (storage, start-up, memory, sampler; cpu)" "$OUT/speed_host.txt" \
    "$PY" benchmarks/speed.py --quick --only storage startup sampler --json "$OUT/speed_host.json"
else
  say "torch sees no CUDA device: the benchmark is not run on a GPU"
fi
for f in speed_cuda speed_cpu speed_host; do
  [ -f "$OUT/$f.txt" ] && { echo "--- $f"; grep -E "ratio|trial |float forward|exhaustive|MET|MISSED|around trial|max RSS|first trial|gpu:" "$OUT/$f.txt"; } >> "$SUMMARY"
done
say "done; results in $OUT"
[ "$TESTS_RC" -eq 0 ] && [ "$(echo "$FOUND" | cut -d' ' -f2)" = "True" ] && exit 0
exit 1
