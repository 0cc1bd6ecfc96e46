"""Sample efficiency under a budget: the most accurate configuration within ``average_bitwidth <= 4``.

One command::

    .venv/bin/python benchmarks/constrained.py                        # mlp and cnn, 20 seeds, 500 evaluations
    .venv/bin/python benchmarks/constrained.py --seeds 5

Folded into the suite (``benchmarks/suite.py``): its members ``mlp/budget`` (the digits
MLP, 46,656 configurations) and ``cnn/budget`` (the mnist5k CNN, 25,920) are exactly this
benchmark: objective accuracy alone, constraint ``average_bitwidth <= 4``, every
configuration evaluated first so that the feasible optimum is exact, a configuration over
the budget skipped (a trial, no evaluation), brute force and ``sensitivity`` given the
hardware-only constraint, Optuna's samplers learning it from the constraint values each
trial records. This script runs those two members (and the other models' budget members
with ``--all``) through ``benchmarks/sample_efficiency.py``; any of its options can be
added (``--strategies``, ``--seeds``, ``--max-unique``, ``--out``, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sample_efficiency  # noqa: E402  (benchmarks/ is not a package)
import suite  # noqa: E402

BUDGET_MEMBERS = ("mlp/budget", "cnn/budget")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    members = [n for n in suite.names() if n.endswith("/budget")] if "--all" in args else list(BUDGET_MEMBERS)
    args = [a for a in args if a != "--all"]
    if not any(a.startswith("--members") for a in args):
        args += ["--members", ",".join(members)]
    if not any(a.startswith("--max-unique") for a in args):
        args += ["--max-unique", "500"]
    if not any(a.startswith("--out") for a in args):
        args += ["--out", "runs/constrained"]
    if not any(a.startswith("--strategies") for a in args):
        args += ["--strategies", "sensitivity,tpe,random,nsgaii,brute_force"]
    return sample_efficiency.main(args)


if __name__ == "__main__":
    sys.exit(main())
