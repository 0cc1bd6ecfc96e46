"""The GPU check script works before a GPU is lent: its dry run on the CPU.

``benchmarks/gpu_check.sh --dry-run`` runs the gpu tests on the CPU and
``benchmarks/gpu_bench.py --dry-run``; this runs the Python part (the benchmark, in a
subprocess, as the script does) and checks the script's shell syntax and options, so
that neither rots while no device is lent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_gpu_bench_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "gpu_bench.json"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_bench.py"), "--dry-run", "--json", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(out.read_text())
    assert figures["dry_run"] is True and figures["device"] == "cpu"
    compiled = figures["compiled_fake_quant"]
    # Every conv, linear and add of the ResNet-8 quantized; the compiled candidate (aot_eager)
    # computes the eager candidate's values to the bit.
    assert compiled["quantized_layers"] > 10
    assert compiled["max_abs_diff_compiled_vs_eager"] == 0.0
    assert compiled["float_ms"] > 0 and compiled["fake_quant_ms"] > 0 and compiled["ratio"] > 0
    exhaustive = figures["exhaustive"]
    assert exhaustive["configurations"] == 4**3  # data_in x weight widths {4, 8} on 3 layers
    assert exhaustive["mismatches"] == 0 and exhaustive["checked"] == 8
    assert "1. ResNet-8" in proc.stdout and "2. exhaustive" in proc.stdout


def test_gpu_check_script_parses_and_refuses_unknown_options() -> None:
    script = REPO / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    helped = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--dry-run" in helped.stdout
    refused = subprocess.run(["bash", str(script), "--fast"], capture_output=True, text=True)
    assert refused.returncode == 2 and "unknown argument --fast" in refused.stderr
