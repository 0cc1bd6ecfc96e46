"""``bitscout export RUN [--trial N] [--out DIR] [--format pytorch|hls4ml]``.

Writes the chosen trial's model with weights on their fixed-point grids (``model.pt``, a
plain state dict), its config as ``[passes.quantize]`` by name (``quantize.toml``, which
``bitscout quantize`` reproduces), a JSON summary of its metrics (``export.json``) and,
with ``--format hls4ml``, an hls4ml project whose types come from the config.
"""

from __future__ import annotations

import argparse
from pathlib import Path


__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    parser = subparsers.add_parser(
        "export",
        help="export a trial of a search run (PyTorch checkpoint on the grid, or hls4ml)",
        description=(
            "Export a trial of a search run: the model with weights on their fixed-point "
            "grids, its per-layer config as [passes.quantize] by name, and its metrics; with "
            "--format hls4ml also an hls4ml project (see docs/export.md)."
        ),
    )
    parser.add_argument("run", type=Path, metavar="RUN", help="the run folder of a search")
    parser.add_argument("--trial", type=int, metavar="N", help="trial number (default: the best; for a Pareto set, the most accurate member)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="export folder (default: RUN/export/trial_N)")
    parser.add_argument("--format", choices=("pytorch", "hls4ml"), default="pytorch", help="what to export (default: pytorch)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export, print what was written; 0 on success."""
    from bitscout.export import export_run

    result, chosen = export_run(args.run, trial=args.trial, out=args.out, format=args.format)
    print(f"exported {chosen.reason}")
    print(f"  checkpoint (weights on their grids): {result.checkpoint}")
    print(f"  [passes.quantize] by name:           {result.config_toml}")
    print(f"  metadata and metrics:                {result.metadata}")
    if result.hls is not None:
        print(f"  hls4ml project:                      {result.hls.path}")
        print()
        print(result.hls.plan.table())
        notes = result.hls.plan.notes
        if notes:
            print()
            print("bit-exactness with bitscout is NOT guaranteed by construction:")
            for note in notes:
                print(f"  - {note}")
    return 0
