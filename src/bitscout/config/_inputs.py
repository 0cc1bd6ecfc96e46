"""Refuse a run folder whose outputs would be written over a file bitscout did not write.

Two checks, both before any work: :func:`check_outputs_spare_inputs` (an output would
replace the config, the checkpoint or the data file) and :func:`check_outputs_are_ours`
(a ``log.json``, ``best.json`` or ``trials.csv`` already in the folder is not one a search
wrote: a MASE run's log, the metrics ``bitscout train`` saved, a table of the user's).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from bitscout.config.schema import Config
from bitscout.errors import ConfigError

__all__ = ["check_outputs_spare_inputs", "check_outputs_are_ours", "SEARCH_RECORDS"]

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


# A search's log.json is a JSON list of trial records, each opening with "number"
# (TrialRecord.to_dict); the first 4 KiB decide, so a 13,824-trial log is not parsed.
_LOG_START = re.compile(r'\s*\[\s*(\]|\{\s*"number"\s*:)')


def _log_problem(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(4096).decode("utf-8", errors="replace")
    if _LOG_START.match(head):
        return None
    if head.lstrip().startswith("{"):
        return "it is a JSON object, as MASE's log.json is; a search's is a list of trials"
    return "it is not a list of trials"


def _best_problem(path: Path) -> str | None:
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return "it is not JSON"
    if isinstance(content, dict) and "directions" in content and "n_trials" in content:
        return None
    if isinstance(content, dict) and "best_epoch" in content:
        return "it holds the metrics `bitscout train` saved with its checkpoint"
    return "it has no \"directions\" and \"n_trials\", which a search's best.json holds"


def _csv_problem(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.readline(4096).decode("utf-8", errors="replace")
    if head.startswith("number,state"):
        return None
    return "its header does not start with number,state"


#: The files a search (or ``bitscout report``) rewrites that may hold a user's own data,
#: each with the test of whether a search wrote it (None: ours; else why not).
SEARCH_RECORDS: dict[str, Callable[[Path], str | None]] = {
    "log.json": _log_problem,
    "best.json": _best_problem,
    "trials.csv": _csv_problem,
}


def check_outputs_are_ours(folder: Path, what: str, *, reading: bool = False) -> None:
    """Raise when a search record in ``folder`` was not written by a bitscout search.

    A search (and ``bitscout report``) replaces ``log.json``, ``best.json`` and
    ``trials.csv`` in its run folder. One from an earlier search (resumed, or run again)
    may be replaced; any other file of those names (a MASE search's ``log.json``, the
    ``best.json`` of ``bitscout train --out`` the same folder, a table of the user's) is
    refused, so that no file of the user's is lost. Checked before any work is done.

    Args:
        folder: The folder the outputs go to.
        what: How the user named the folder, for the message (``"run folder runs/x"``).
        reading: The folder is read as a search's run folder (``export``, ``verify``,
            ``report``), not written: the message says that instead.

    Raises:
        ConfigError: Names the file, why it is not a search's, and what to do.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return
    for name, problem_of in SEARCH_RECORDS.items():
        path = folder / name
        if not path.is_file():
            continue
        try:
            problem = problem_of(path)
        except OSError as exc:
            problem = f"it cannot be read ({exc.strerror or exc})"
        if problem is not None and reading:
            raise ConfigError(
                f"{what}: {path} was not written by a bitscout search ({problem}), so {folder} "
                "is not a search's run folder as it stands; give the folder `bitscout search` "
                f"wrote (its --out), or move the file and run the search again"
            )
        if problem is not None:
            raise ConfigError(
                f"{what}: {path} was not written by a bitscout search ({problem}), and "
                f"bitscout would replace it with its own {name}; choose another folder (--out DIR), "
                "or move the file"
            )
