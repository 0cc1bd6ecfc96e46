"""Rewriting a damaged study journal, keeping every complete trial (``bitscout report --repair``).

A journal is damaged when a line in its middle is not an entry: a process that wrote
without the lock, a disk that lost a block, an edit by hand, or an older bitscout that
appended an entry onto a torn line (``{"op_code": 5, "worker_id": "x{"op_code":0,...}``).
Optuna then cannot read the study at all. :func:`repair_journal`:

1. reads every line; an entry glued after a torn one is split off and kept, a line that
   holds no entry is dropped (its number is reported);
2. replays what is left into a fresh journal, study by study, copying each study's
   attributes (the fingerprint that guards a resume among them) and its trials: finished
   ones as they are, ``WAITING`` ones (queued retries) as they are, and ``RUNNING`` ones
   (their process was lost with the damage) as ``FAIL``, so that trial numbers stay and a
   search retries them;
3. keeps the damaged file beside the new one (``study.journal.damaged-<time>``) and
   replaces the journal atomically, under the journal's lock.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from bitscout._atomic import temporary_name
from bitscout._optuna_adapter import FlockLock, LocalJournalBackend, is_journal_entry, replay_entries
from bitscout.errors import SearchError

__all__ = ["JournalRepair", "repair_journal", "REPAIRED_ATTR"]

#: Trial system attr set on a trial that was RUNNING when the journal was repaired.
REPAIRED_ATTR = "bitscout_repaired"

_ENTRY_START = b'{"op_code"'
_CREATE_TRIAL = 4
_TRIAL_OPS = (5, 6, 7, 8, 9)  # operations on a trial, by trial id
_REPAIR_WORKER = "bitscout-repair"


@dataclass
class JournalRepair:
    """What :func:`repair_journal` did.

    Attributes:
        path: The journal, now repaired.
        backup: The damaged original, kept beside it (None when nothing was damaged).
        lines: Lines read.
        dropped: Numbers (from 1) of the lines that held no entry, or one Optuna cannot
            apply (an operation on a trial whose creation was lost).
        salvaged: Numbers of the lines whose entry was split off a torn one.
        studies: Studies rewritten.
        trials: State name -> trials kept in that state (RUNNING ones are counted as FAIL).
        running_failed: Trials that were RUNNING, now FAIL.
        recreated: Trials whose creation line was lost, rebuilt from their later lines.
    """

    path: Path
    backup: Path | None
    lines: int
    dropped: list[int] = field(default_factory=list)
    salvaged: list[int] = field(default_factory=list)
    studies: int = 0
    trials: dict[str, int] = field(default_factory=dict)
    running_failed: int = 0
    recreated: int = 0

    def summary(self) -> str:
        """The repair in a few lines, for people."""
        if self.backup is None:
            return f"{self.path}: every one of its {self.lines} lines is a journal entry; nothing to repair"
        kept = ", ".join(f"{n} {state}" for state, n in sorted(self.trials.items())) or "no trials"
        lines = [
            f"repaired {self.path}: {self.studies} study(ies), trials kept: {kept}",
            f"  lines dropped (no entry in them): {_numbers(self.dropped) or 'none'}",
        ]
        if self.salvaged:
            lines.append(f"  entries split off a torn line: lines {_numbers(self.salvaged)}")
        if self.recreated:
            lines.append(f"  {self.recreated} trial(s) whose creation line was lost, rebuilt from their later lines")
        if self.running_failed:
            lines.append(f"  {self.running_failed} trial(s) that were running are now FAIL (a search retries them)")
        lines.append(f"  the damaged file is kept as {self.backup}")
        return "\n".join(lines)


def _numbers(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:10])
    return shown + (f" (and {len(values) - 10} more)" if len(values) > 10 else "")


def _entries(data: bytes, report: JournalRepair) -> tuple[list[dict[str, Any]], list[int]]:
    """The entries in ``data`` (entries split off torn lines too), and their line numbers."""
    kept: list[dict[str, Any]] = []
    numbers: list[int] = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file ends with a newline: no empty line after it
    report.lines = len(lines)
    for number, line in enumerate(lines, start=1):
        entry = _entry(line)
        if entry is None:
            # A torn entry followed by a whole one on the same line: keep the whole one.
            cut = line.rfind(_ENTRY_START)
            entry = _entry(line[cut:]) if cut > 0 else None
            if entry is None:
                report.dropped.append(number)
                continue
            report.salvaged.append(number)
        kept.append(entry)
        numbers.append(number)
    return kept, numbers


def _realign(
    entries: list[dict[str, Any]], numbers: list[int], report: JournalRepair
) -> tuple[list[dict[str, Any]], list[int]]:
    """Stand-ins for lost trial-creation entries, so that later entries find their trial.

    The journal numbers trials by the order of their creation entries; when one is lost,
    every later entry would update the trial created after the one it means. An entry
    for a trial id not created yet reveals the loss: a stand-in creation (in the study of
    the last trial created) is put before it, and the lost trial is rebuilt from its
    later entries (its parameters, state and values).
    """
    out: list[dict[str, Any]] = []
    out_numbers: list[int] = []
    created, study = 0, 0
    for entry, number in zip(entries, numbers):
        op = entry["op_code"]
        if op == _CREATE_TRIAL:
            created += 1
            study = entry["study_id"] if type(entry["study_id"]) is int else study
        elif op in _TRIAL_OPS and type(entry["trial_id"]) is int and entry["trial_id"] >= created:
            for _ in range(entry["trial_id"] - created + 1):
                out.append({"op_code": _CREATE_TRIAL, "worker_id": _REPAIR_WORKER, "study_id": study,
                            "datetime_start": None})
                out_numbers.append(0)
                report.recreated += 1
            created = entry["trial_id"] + 1
        out.append(entry)
        out_numbers.append(number)
    return out, out_numbers


def _entry(line: bytes) -> dict[str, Any] | None:
    try:
        log = json.loads(line)
    except ValueError:
        return None
    return log if is_journal_entry(log) else None


def repair_journal(path: str | Path) -> JournalRepair:
    """Rewrite a damaged journal, keeping every complete trial (see the module doc).

    A journal whose every line is an entry is left untouched (a torn last line alone is
    cut by any search or report that opens it).

    Args:
        path: The ``study.journal`` file.

    Returns:
        What was kept, dropped and salvaged, and where the damaged file went.

    Raises:
        SearchError: The file does not exist or cannot be rewritten.
    """
    path = Path(path)
    if not path.is_file():
        raise SearchError(f"there is no journal to repair at {path}")
    lock = FlockLock(str(path))
    lock.acquire()  # no search appends while the file is rewritten
    try:
        data = path.read_bytes()
        report = JournalRepair(path=path, backup=None, lines=0)
        entries, numbers = _entries(data, report)
        entries, numbers = _realign(entries, numbers, report)
        source, skipped = replay_entries(entries)
        report.dropped = sorted(report.dropped + [numbers[index] for index in skipped])
        if not report.dropped and not report.salvaged:
            return report
        fresh = temporary_name(path)
        try:
            _copy_studies(source, JournalStorage(LocalJournalBackend(str(fresh))), report)
            backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            shutil.copy2(path, backup)
            os.replace(fresh, path)
            report.backup = backup
        except OSError as exc:
            raise SearchError(f"cannot rewrite the journal {path}: {exc.strerror or exc}") from None
        finally:
            for leftover in (fresh, Path(f"{fresh}.lock")):
                leftover.unlink(missing_ok=True)
        return report
    finally:
        lock.release()


def _copy_studies(source: JournalStorage, target: JournalStorage, report: JournalRepair) -> None:
    for summary in source.get_all_studies():
        old_id = source.get_study_id_from_name(summary.study_name)
        new_id = target.create_new_study(source.get_study_directions(old_id), summary.study_name)
        for key, value in source.get_study_user_attrs(old_id).items():
            target.set_study_user_attr(new_id, key, value)
        for key, value in source.get_study_system_attrs(old_id).items():
            target.set_study_system_attr(new_id, key, value)
        for trial in source.get_all_trials(old_id, deepcopy=False):
            if trial.state == TrialState.RUNNING:
                trial = optuna.trial.create_trial(
                    state=TrialState.FAIL,
                    params=trial.params,
                    distributions=trial.distributions,
                    user_attrs=trial.user_attrs,
                    system_attrs={**trial.system_attrs, REPAIRED_ATTR: "running when the journal was repaired"},
                    intermediate_values=trial.intermediate_values,
                )
                report.running_failed += 1
            target.create_new_trial(new_id, template_trial=trial)
            report.trials[trial.state.name] = report.trials.get(trial.state.name, 0) + 1
        report.studies += 1
