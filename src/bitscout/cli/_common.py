"""Options every config-driven command shares: the config file and its overrides.

A command adds them with :func:`add_config_argument` and :func:`add_override_options`
(or both at once with :func:`add_config_overrides`), then turns the parsed arguments
into a :class:`bitscout.config.Config` with :func:`config_from_args`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from dataclasses import fields
from pathlib import Path

from bitscout.config import BitscoutConfigWarning, Config, ConfigOverrides, load_config
from bitscout.errors import CheckpointError, ConfigError

__all__ = [
    "add_config_argument",
    "add_override_options",
    "add_config_overrides",
    "config_path_from_args",
    "overrides_from_args",
    "config_from_args",
    "check_output_folder",
]

# argparse keeps MASE's `--config PATH` apart from the positional CONFIG under this name.
_CONFIG_OPTION_DEST = "config_option"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Add the config file: positional ``CONFIG``, or MASE's spelling ``--config CONFIG``.

    Exactly one of the two must be given; :func:`config_path_from_args` says so otherwise.
    """
    parser.add_argument(
        "config", nargs="?", type=Path, metavar="CONFIG", help="the TOML config file"
    )
    parser.add_argument(
        "--config",
        dest=_CONFIG_OPTION_DEST,
        type=Path,
        metavar="CONFIG",
        help="the TOML config file, in MASE's spelling (instead of the positional CONFIG)",
    )


def add_override_options(parser: argparse.ArgumentParser, *, search: bool = False) -> None:
    """Add the options that override values of the config file.

    Args:
        parser: The subcommand's parser.
        search: Also add the search options (--n-trials, --sampler, --storage,
            --study-name, --workers).
    """
    group = parser.add_argument_group("config overrides (each replaces the file's value)")
    group.add_argument("--load", type=Path, metavar="CKPT", help="checkpoint to start from (load_name)")
    group.add_argument("--load-type", metavar="TYPE", help="checkpoint kind: pt, pl or bitscout")
    group.add_argument("--out", type=Path, metavar="DIR", help="run folder")
    group.add_argument("--seed", type=int, metavar="N", help="seed of everything random, the sampler included")
    group.add_argument("--accelerator", metavar="NAME", help="cpu, cuda (or gpu) or auto")
    if not search:
        return
    group.add_argument("--n-trials", type=int, metavar="N", help="trials in total for the study")
    group.add_argument(
        "--sampler",
        metavar="NAME",
        help="strategy to use: an Optuna sampler (tpe, random, nsgaii, ...) or brute_force",
    )
    group.add_argument("--storage", metavar="URL", help="Optuna storage URL shared by workers")
    group.add_argument("--study-name", metavar="NAME", help="name of the study in the storage")
    group.add_argument("--workers", type=int, metavar="K", help="local worker processes sharing the study")


def add_config_overrides(parser: argparse.ArgumentParser, *, search: bool = False) -> None:
    """Add the config file and its override options (both of the functions above)."""
    add_config_argument(parser)
    add_override_options(parser, search=search)


def config_path_from_args(args: argparse.Namespace) -> Path:
    """The config file given as ``CONFIG`` or ``--config``.

    Raises:
        ConfigError: Neither or both were given.
    """
    positional = getattr(args, "config", None)
    option = getattr(args, _CONFIG_OPTION_DEST, None)
    if positional is not None and option is not None:
        raise ConfigError(
            f"the config file is given twice ({positional} and --config {option}); "
            "give it once, as CONFIG or as --config CONFIG"
        )
    if positional is None and option is None:
        raise ConfigError("no config file given: pass it as CONFIG or as --config CONFIG")
    return positional if positional is not None else option


def overrides_from_args(args: argparse.Namespace) -> ConfigOverrides:
    """The override options found in ``args`` (options a command did not add stay None)."""
    return ConfigOverrides(**{item.name: getattr(args, item.name, None) for item in fields(ConfigOverrides)})


def _check_load_option(args: argparse.Namespace) -> None:
    """``--load`` names a file that exists: said about --load, not the config's load_name."""
    load = getattr(args, "load", None)
    if load is None:
        return
    path = Path(load).expanduser()
    try:
        path.stat()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CheckpointError(
            f"--load {load}: cannot be read ({exc.strerror or exc}); give an existing checkpoint file"
        ) from None
    if path.is_dir():
        raise CheckpointError(
            f"--load {load}: is a folder, not a checkpoint file; give the checkpoint file itself"
        )
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to the current folder, {Path.cwd()})"
        raise CheckpointError(f"--load {load}: no such file{where}; give an existing checkpoint file")


def check_output_folder(folder: Path, what: str, *, remedy: str | None = None) -> None:
    """Make sure ``folder`` can be created and written, before any work is done.

    A run folder that is a file, lies under a file, or sits in a read-only place would
    otherwise fail only when the first output is written, after the training or search.
    The folder is created (an empty one is left behind if the command then fails).

    Args:
        folder: The folder outputs will be written to.
        what: How the user named it, for the message (``"--out runs/x"``).
        remedy: What to do instead; default: choose another run folder with --out.

    Raises:
        ConfigError: The folder cannot be created or written, saying why and what to do.
    """
    folder = Path(folder).expanduser()
    elsewhere = remedy or "choose another run folder (--out DIR)"
    try:
        existing = next((p for p in (folder, *folder.parents) if p.exists() or p.is_symlink()), None)
    except OSError as exc:  # a name too long, a loop of links
        raise ConfigError(f"{what}: {folder} cannot be used ({exc.strerror or exc}); {elsewhere}") from None
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == folder else f"is under {existing}, which is a file"
        raise ConfigError(f"{what}: {folder} {where}, not a folder; {elsewhere}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".bitscout-write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{what}: cannot write in {folder} ({exc.strerror or exc}); "
            f"{remedy or 'choose a folder you can write to (--out DIR)'}"
        ) from None


def config_from_args(args: argparse.Namespace, *, check_load: bool = True) -> Config:
    """Load the config named in ``args`` with its overrides.

    Keys the file sets that bitscout ignores are shown as ``warning: ...`` lines on
    standard error, once each.

    Args:
        args: The parsed command line.
        check_load: Refuse a ``--load`` that is not an existing file (``check``, which
            needs no checkpoint, passes False).

    Raises:
        ConfigError: The config or an override is invalid.
        CheckpointError: ``--load`` is a folder or does not exist.
    """
    if check_load:
        _check_load_option(args)
    path = config_path_from_args(args)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BitscoutConfigWarning)
        try:
            return load_config(path, overrides_from_args(args))
        finally:
            # Shown even when the config is invalid: an ignored key may be the mistake.
            for warning in caught:
                if issubclass(warning.category, BitscoutConfigWarning):
                    print(f"warning: {warning.message}", file=sys.stderr)
                else:
                    warnings.showwarning(
                        warning.message, warning.category, warning.filename, warning.lineno
                    )
