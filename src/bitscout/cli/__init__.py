"""The ``bitscout`` command: a thin front end over the Python API.

Each subcommand lives in its own module ``bitscout.cli._<name>`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` to the function that
runs it. Errors a user can cause are :class:`bitscout.errors.BitscoutError`: they are
printed as one plain message (no traceback) and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from bitscout._allocator import tune_allocator
from bitscout.errors import BitscoutError, BitscoutWarning

__all__ = ["main", "build_parser", "run_command"]

# Subcommand modules, in the order `bitscout --help` lists them.
_COMMANDS = (
    "check",
    "train",
    "quantize",
    "search",
    "compare",
    "report",
    "export",
    "verify",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bitscout",
        description="Find how few bits a neural network can live with.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMANDS:
        importlib.import_module(f"bitscout.cli._{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bitscout`` command line; returns the exit status.

    First of all, glibc's allocator is set for large tensors
    (:func:`bitscout._allocator.tune_allocator`; ``BITSCOUT_MALLOC=default`` opts out).
    """
    try:
        tune_allocator()
    except BitscoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: a :class:`BitscoutError` (or an ``OSError`` on a path) is one
    ``error:`` line and status 2.

    Args:
        args: What :func:`build_parser` parsed (a caller running many commands builds
            the parser once).

    Returns:
        The command's exit status.
    """
    try:
        with _plain_warnings():
            return int(args.func(args) or 0)
    except BitscoutError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A path the user gave that the system refuses (a name too long, a full disk, a
        # folder that vanished) where no check named it first: still one line, not a
        # traceback, naming the path and the system's reason.
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(
            f"error: {where}{exc.strerror or exc} (refused by the operating system; check the "
            "path, its permissions and the free disk space)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def _plain_warnings() -> Iterator[None]:
    """Print bitscout's own warnings as ``warning: ...`` lines, once each (those of the
    classes bitscout defines, e.g. the objective's MetricWarning, not only BitscoutWarning)."""
    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, BitscoutWarning) or category.__module__.startswith("bitscout."):
            print(f"warning: {message}", file=sys.stderr)
        else:
            shown(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
