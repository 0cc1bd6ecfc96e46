"""Refuse a run folder whose outputs would be written over the config's own input files."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path

from bitscout.config.schema import Config
from bitscout.errors import ConfigError

__all__ = ["check_outputs_spare_inputs"]

_DATA_SUFFIXES = (".npz", ".pt", ".pth", ".csv", ".parquet", ".pq")


def _inputs(config: Config) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    if config.source is not None:
        found.append(("the config file", Path(config.source)))
    if config.load_name is not None:
        found.append(("the checkpoint (load_name)", Path(config.load_name).expanduser()))
    if config.dataset.lower().endswith(_DATA_SUFFIXES):
        found.append(("the data file (dataset)", Path(config.dataset).expanduser()))
    if config.dataset_path is not None:
        found.append(("the data file (dataset_path)", Path(config.dataset_path).expanduser()))
    return found


def check_outputs_spare_inputs(config: Config, folder: Path, outputs: Iterable[str], what: str) -> None:
    """Raise when a file ``folder`` will be written to is one of ``config``'s inputs.

    ``bitscout search config.toml --out .`` would replace the user's config with the
    resolved one (its comments gone), and an export into the checkpoint's folder would
    replace ``model.pt``. Checked before any work is done.

    Args:
        config: The config whose inputs are protected (its file, checkpoint, data file).
        folder: The folder outputs go to.
        outputs: The names written there (shell patterns allowed: ``"pareto_*.png"``).
        what: How the user named the folder, for the message (``"--out ."``).

    Raises:
        ConfigError: Names the output, the input it would replace, and what to do.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return  # a new folder holds no inputs
    patterns = list(outputs)
    for label, path in _inputs(config):
        try:
            same_folder = path.is_file() and path.parent.samefile(folder)
        except OSError:
            continue  # an input that does not exist is reported where it is read
        if same_folder and any(fnmatch.fnmatchcase(path.name, p) for p in patterns):
            raise ConfigError(
                f"{what}: bitscout would write {path.name} in {folder} over {label}, {path}; "
                "choose another folder (--out DIR), or move the file"
            )
