"""Refuse a run folder whose outputs would be written over a file bitscout did not write.

Two checks, both before any work: :func:`check_outputs_spare_inputs` (an output would
replace the config, the checkpoint or the data file) and :func:`check_outputs_are_ours`
(a ``log.json``, ``best.json``, ``trials.csv``, ``config.toml``, plot, ``report.html``,
``calibration.json`` or ``study.journal`` already in the folder is not one a search wrote:
a MASE run's log, the metrics ``bitscout train`` saved, a table, a config or a plot of the
user's, another tool's Optuna journal).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from bitscout.config.schema import Config
from bitscout.errors import ConfigError

__all__ = [
    "check_outputs_spare_inputs",
    "check_outputs_are_ours",
    "check_compare_outputs_are_ours",
    "SEARCH_RECORDS",
    "RUN_FILES",
    "COMPARE_FILES",
    "CONFIG_MARKER",
    "PLOT_SOFTWARE",
]

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


#: The first line of the config.toml a search writes: how a later search of the same
#: folder knows the file is its own to replace.
CONFIG_MARKER = "# bitscout search: the resolved config of this run (what `bitscout check` prints); rewritten on resume"
#: The PNG text a search's plots carry (``Software``), likewise.
PLOT_SOFTWARE = "bitscout"


def _written_by_a_search_before(folder: Path) -> bool:
    """Whether ``folder`` holds a search's best.json: the mark of a run folder that an
    older bitscout (before the marks above) wrote its config.toml and plots into."""
    best = folder / "best.json"
    try:
        return best.is_file() and _best_problem(best) is None
    except OSError:
        return False


def _config_problem(path: Path) -> str | None:
    import tomllib

    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return "it is not text"
    if text.startswith(CONFIG_MARKER):
        return None
    if _written_by_a_search_before(path.parent) and "#" not in text:
        try:
            tomllib.loads(text)
            return None  # an older search's resolved config: no marker, and no comments
        except tomllib.TOMLDecodeError:
            pass
    return f"it does not start with the line a search writes ({CONFIG_MARKER.split(':')[0]}: ...)"


def _png_software(path: Path) -> str | None:
    """The ``Software`` text of a PNG (None: not a PNG, or none before the image data)."""
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            size, kind = int.from_bytes(head[:4], "big"), head[4:]
            if kind == b"IDAT" or size > 1 << 20:
                return None
            body = f.read(size)
            f.read(4)  # the CRC
            if kind == b"tEXt" and body.startswith(b"Software\x00"):
                return body[len(b"Software\x00"):].decode("latin-1")


def _comparison_problem(path: Path) -> str | None:
    try:
        content = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        return "it is not JSON"
    if isinstance(content, dict) and {"strategies", "runs", "space_size"} <= content.keys():
        return None
    return "it has no \"strategies\", \"runs\" and \"space_size\", which a comparison.json holds"


def _comparison_md_problem(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(64).decode("utf-8", errors="replace")
    return None if head.startswith("# Strategy comparison\n") else "it does not open with `# Strategy comparison`"


def _written_by_compare_before(folder: Path) -> bool:
    path = folder / "comparison.json"
    try:
        return path.is_file() and _comparison_problem(path) is None
    except OSError:
        return False


def _plot_problem(path: Path) -> str | None:
    software = _png_software(path)
    if software is not None and software.startswith(PLOT_SOFTWARE):
        return None
    older = _written_by_a_search_before(path.parent) or _written_by_compare_before(path.parent)
    if software is not None and software.startswith("Matplotlib") and older:
        return None  # a plot an older search drew (before the mark), beside its records
    return "it is not a plot a search drew"


def _report_problem(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(512).decode("utf-8", errors="replace")
    # Every page bitscout writes opens this way (bitscout.report.render_page).
    if head.startswith('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>bitscout '):
        return None
    return "it is not a page bitscout wrote"


def _calibration_problem(path: Path) -> str | None:
    try:
        content = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        return "it is not JSON"
    if isinstance(content, dict) and {"observer", "samples", "ranges"} <= content.keys():
        return None
    return "it has no \"observer\", \"samples\" and \"ranges\", which a search's calibration.json holds"


# An Optuna journal line: {"op_code": N, ...}; 0 creates a study, 1 deletes one, 2 sets a
# study's user attribute (bitscout's fingerprint among them).
_JOURNAL_OP = re.compile(r'\s*\{\s*"op_code"\s*:\s*(\d+)')


def _journal_problem(path: Path) -> str | None:
    """None when every study of the journal is a bitscout search's (it has a fingerprint).

    Only the lines that create or delete a study or set the fingerprint are parsed, so a
    journal of 100,000 trials is read in a moment.
    """
    created: dict[int, str] = {}
    next_id = 0
    fingerprinted: set[int] = set()
    with open(path, "rb") as f:
        for number, raw in enumerate(f):
            line = raw.decode("utf-8", errors="replace")
            match = _JOURNAL_OP.match(line)
            if match is None:
                if number == 0 and line.strip():
                    return "it is not an Optuna journal (its first line is no journal operation)"
                continue  # a torn last line: `bitscout report --repair` is the place for it
            op = int(match[1])
            if op not in (0, 1) and "bitscout_fingerprint" not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if op == 0 and str(entry.get("study_name")) not in created.values():
                # As Optuna replays it: creating a name that exists (every resumed search
                # asks to) makes no study and takes no id.
                created[next_id] = str(entry.get("study_name"))
                next_id += 1
            elif op == 1:
                created.pop(entry.get("study_id"), None)
            elif op == 2 and "bitscout_fingerprint" in (entry.get("user_attr") or {}):
                fingerprinted.add(entry.get("study_id"))
    foreign = [name for study_id, name in created.items() if study_id not in fingerprinted]
    if foreign:
        listed = ", ".join(repr(n) for n in foreign)
        return f"it holds the Optuna stud{'y' if len(foreign) == 1 else 'ies'} {listed}, which no bitscout search made"
    return None


#: The other files a search writes in its run folder, each with the test of whether a
#: search wrote it; shell patterns allowed.
RUN_FILES: dict[str, Callable[[Path], str | None]] = {
    "config.toml": _config_problem,
    "calibration.json": _calibration_problem,
    "report.html": _report_problem,
    "objective.png": _plot_problem,
    "pareto_*.png": _plot_problem,
    "best_widths.png": _plot_problem,
    "sensitivity.png": _plot_problem,
}

#: What ``bitscout compare`` writes in its folder, each with the test of whether a
#: comparison wrote it.
COMPARE_FILES: dict[str, Callable[[Path], str | None]] = {
    "comparison.json": _comparison_problem,
    "comparison.md": _comparison_md_problem,
    "best_so_far.png": _plot_problem,
    "report.html": _report_problem,
}


def check_compare_outputs_are_ours(folder: Path, what: str) -> None:
    """Raise when a file ``bitscout compare`` writes is in ``folder`` and no comparison
    (or search) wrote it: a ``comparison.md`` of the user's is not replaced.

    Raises:
        ConfigError: Names the file, why it is not bitscout's, and what to do.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return
    for path, problem_of in _present(folder, list(COMPARE_FILES.items())):
        try:
            problem = problem_of(path)
        except OSError as exc:
            problem = f"it cannot be read ({exc.strerror or exc})"
        if problem is not None:
            raise ConfigError(
                f"{what}: {path} was not written by bitscout compare ({problem}), and the "
                f"comparison would replace it with its own {path.name}; choose another folder "
                "(--out DIR), or move the file"
            )


#: The default study storage of a run folder (bitscout.study.JOURNAL_FILE).
_JOURNAL = "study.journal"


def check_outputs_are_ours(
    folder: Path,
    what: str,
    *,
    reading: bool = False,
    journal: bool = False,
    writes: Iterable[str] | None = None,
) -> None:
    """Raise when a search record in ``folder`` was not written by a bitscout search.

    A search (and ``bitscout report``) replaces ``log.json``, ``best.json`` and
    ``trials.csv`` in its run folder. One from an earlier search (resumed, or run again)
    may be replaced; any other file of those names (a MASE search's ``log.json``, the
    ``best.json`` of ``bitscout train --out`` the same folder, a table of the user's) is
    refused, so that no file of the user's is lost. Checked before any work is done.

    Written (not ``reading``), the folder's plots, ``report.html``, ``config.toml`` and
    ``calibration.json`` are checked too: ours carry a mark (the config's first line,
    the PNGs' ``Software`` text, the page's head; those of an older search are known by
    the search's ``best.json`` beside them). With ``journal``, so is ``study.journal``:
    a search appends to it, so every study in it must be a bitscout search's (one with a
    fingerprint); another tool's journal is refused, not appended to.

    Args:
        folder: The folder the outputs go to.
        what: How the user named the folder, for the message (``"run folder runs/x"``).
        reading: The folder is read as a search's run folder (``export``, ``verify``,
            ``report``), not written: the message says that instead, and only the
            search records are checked.
        journal: The default study storage (``study.journal``) will be appended to.
        writes: The names of :data:`RUN_FILES` the caller writes (default: all of them);
            ``bitscout.search`` writes the plots only, so a config.toml of yours in its
            ``out`` is left alone and not refused.

    Raises:
        ConfigError: Names the file, why it is not a search's, and what to do.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return
    checks = list(SEARCH_RECORDS.items())
    if not reading:
        names = set(RUN_FILES) if writes is None else set(writes)
        checks += [(name, problem_of) for name, problem_of in RUN_FILES.items() if name in names]
    if journal:
        checks.append((_JOURNAL, _journal_problem))
    for path, problem_of in _present(folder, checks):
        name = path.name
        try:
            problem = problem_of(path)
        except OSError as exc:
            problem = f"it cannot be read ({exc.strerror or exc})"
        if problem is not None and name == _JOURNAL:
            raise ConfigError(
                f"{what}: {path} was not written by a bitscout search ({problem}), and the search "
                "would add its study to it; choose another folder (--out DIR), or move the file "
                "(to share a study on purpose, give --storage)"
            )
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


def _present(
    folder: Path, checks: list[tuple[str, Callable[[Path], str | None]]]
) -> Iterable[tuple[Path, Callable[[Path], str | None]]]:
    """The files of ``folder`` that the checks' names (or patterns) match, in order."""
    for pattern, problem_of in checks:
        if any(c in pattern for c in "*?["):
            for path in sorted(folder.glob(pattern)):
                if path.is_file():
                    yield path, problem_of
        elif (folder / pattern).is_file():
            yield folder / pattern, problem_of
