"""Local worker processes: ``bitscout search --workers K`` runs K processes on one study."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optuna.storages import BaseStorage
from optuna.trial import TrialState

from bitscout.study._index import RECORD_ATTR

__all__ = ["LocalWorkersResult", "run_local_workers", "worker_command", "WORKERS_DIR"]

_log = logging.getLogger(__name__)

#: Sub-folder of the run folder with one log file per worker process.
WORKERS_DIR = "workers"


@dataclass
class LocalWorkersResult:
    """What :func:`run_local_workers` saw.

    Attributes:
        returncodes: Exit status of each worker process (negative: killed by that signal).
        logs: Each worker's log file (its standard output and error).
        interrupted: Stopped by Ctrl-C.
    """

    returncodes: list[int]
    logs: list[Path]
    interrupted: bool = False
    wall_time_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(code == 0 for code in self.returncodes)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _finished_count(storage: BaseStorage, study_name: str) -> int | None:
    """Finished trials that count toward n_trials (a lost trial's FAIL does not)."""
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return sum(
        1
        for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED))
        if t.state != TrialState.FAIL or RECORD_ATTR in t.user_attrs
    )


def run_local_workers(
    command: Sequence[str],
    workers: int,
    *,
    run_dir: Path,
    storage: BaseStorage,
    study_name: str,
    total: int | None = None,
    progress: bool = True,
    env: Mapping[str, str] | None = None,
    poll_s: float = 0.5,
) -> LocalWorkersResult:
    """Start ``workers`` copies of a worker command on one study and wait for them.

    Each process runs ``command`` (e.g. ``[sys.executable, "-m", "bitscout", "search",
    CONFIG, "--worker-process", ...]``) with its output in
    ``<run_dir>/workers/worker-<i>.log``. One progress bar follows the study's finished
    trials. Ctrl-C is passed on to every worker (each stops after its current trial).

    Args:
        command: The command line of one worker.
        workers: How many processes to start (>= 1).
        run_dir: The run folder (for the logs).
        storage: The study's storage, read for the progress bar.
        study_name: The study's name.
        total: Trials in total, for the progress bar.
        progress: Show the progress bar.
        env: Extra environment variables for the workers.
        poll_s: Seconds between two looks at the study.

    Returns:
        The exit status and log of every worker.
    """
    if workers < 1:
        raise SearchError(f"--workers must be at least 1; got {workers}")
    log_dir = Path(run_dir) / WORKERS_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, **(env or {})}
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    started = time.perf_counter()
    for i in range(workers):
        path = log_dir / f"worker-{i}.log"
        logs.append(path)
        with open(path, "wb") as out:
            procs.append(
                subprocess.Popen(list(command), stdout=out, stderr=subprocess.STDOUT, env=child_env)
            )
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"search ({workers} workers)", unit="trial", dynamic_ncols=True)
    interrupted = False
    try:
        while True:
            running = [p for p in procs if p.poll() is None]
            if bar is not None:
                done = _finished_count(storage, study_name)
                if done is not None and done > bar.n:
                    bar.update(done - bar.n)
            if not running:
                break
            try:
                time.sleep(poll_s)
            except KeyboardInterrupt:
                interrupted = True
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
                for p in procs:
                    p.wait()
                break
    finally:
        if bar is not None:
            bar.close()
    codes = [int(p.wait()) for p in procs]
    errors = [
        f"worker {i} ({'killed by signal ' + str(-c) if c < 0 else 'exit status ' + str(c)}), log {logs[i]}:\n{_tail(logs[i])}"
        for i, c in enumerate(codes)
        if c not in (0, 130)
    ]
    return LocalWorkersResult(codes, logs, interrupted, time.perf_counter() - started, errors)


def worker_command(argv: Sequence[str]) -> list[str]:
    """The command line that runs ``bitscout <argv>`` with this Python."""
    return [sys.executable, "-m", "bitscout", *argv]
