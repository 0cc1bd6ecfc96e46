"""``bitscout verify RUN [--trial N] [--samples N] [--tolerance T]``.

Exports the trial to hls4ml, compiles the project's C simulation and compares its
outputs with bitscout's own fake-quantized evaluation on the same samples (every sample
of the split unless ``--samples`` says fewer). Exits 1 when
they differ by more than the tolerance (default 0: bit-exact).
"""

from __future__ import annotations

import argparse
from pathlib import Path


__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify",
        help="compare a trial's hls4ml C simulation with bitscout, output by output",
        description=(
            "Export a trial of a search run to hls4ml, compile its C simulation (g++) and "
            "compare it with bitscout's fake-quantized evaluation on the same samples. Exit "
            "status 1 when they differ by more than --tolerance."
        ),
    )
    parser.add_argument("run", type=Path, metavar="RUN", help="the run folder of a search")
    parser.add_argument("--trial", type=int, metavar="N", help="trial number (default: as bitscout export picks)")
    parser.add_argument(
        "--samples", type=int, default=None, metavar="N",
        help="samples to compare (default: every sample of the split; a rare mismatch can hide in any)",
    )
    parser.add_argument("--tolerance", type=float, default=0.0, metavar="T", help="largest absolute output difference accepted (default 0: exact)")
    parser.add_argument("--split", choices=("train", "val", "test"), default="test", help="which split to take the samples from (default test)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="export folder (default: RUN/export/trial_N)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Verify and print the report; 0 when they agree, 1 when they do not."""
    from bitscout.export import verify_run

    report, result, chosen = verify_run(
        args.run, trial=args.trial, samples=args.samples, tolerance=args.tolerance,
        out=args.out, split=args.split,
    )
    print(f"verifying {chosen.reason}; hls4ml project {result.hls.path if result.hls else '-'}")
    print(report.summary())
    return 0 if report.agree else 1
