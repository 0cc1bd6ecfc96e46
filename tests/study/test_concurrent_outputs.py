"""Several processes writing one run folder's outputs at once never crash (issue 15, item 3).

Every output goes through a temporary file unique to its process and thread, renamed
over the destination; with the old fixed ``best.json.tmp`` names, one writer renamed
another's temporary file away and died with ``FileNotFoundError``.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import threading
from pathlib import Path

from bitscout._atomic import atomic_path, atomic_write_text, temporary_name
from bitscout.study import SearchResult, TrialRecord
from bitscout.study._outputs import write_outputs

WRITERS = 4
ROUNDS = 40


def _result(n: int) -> SearchResult:
    trials = [
        TrialRecord(number=i, state="COMPLETE", values=(i / 10,), software_metrics={"accuracy": i / 10},
                    sampled_config={"fc1/weight_width": 4})
        for i in range(n)
    ]
    return SearchResult(trials=trials, directions=["maximize"])


def _write_many(run_dir: str, n: int, errors) -> None:  # noqa: ANN001
    try:
        result = _result(n)
        for _ in range(ROUNDS):
            write_outputs(result, Path(run_dir))
    except BaseException as exc:  # noqa: BLE001  (reported to the parent)
        errors.put(f"{type(exc).__name__}: {exc}")


def test_processes_writing_one_run_folder_never_crash_and_leave_whole_files(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    errors = context.Queue()
    writers = [context.Process(target=_write_many, args=(str(tmp_path), 5 + k, errors)) for k in range(WRITERS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == [] and all(w.exitcode == 0 for w in writers)
    # Whichever writer renamed last, each file is one whole file of one writer.
    log = json.loads((tmp_path / "log.json").read_text())
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert 5 <= len(rows) <= 5 + WRITERS - 1
    assert log and json.loads((tmp_path / "best.json").read_text())
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []  # no temporary left


def test_temporary_names_are_unique_per_thread_and_call_and_keep_the_suffix(tmp_path: Path) -> None:
    target = tmp_path / "best.png"
    names = {temporary_name(target) for _ in range(100)}
    seen: list[Path] = []
    thread = threading.Thread(target=lambda: seen.append(temporary_name(target)))
    thread.start()
    thread.join()
    assert len(names | set(seen)) == 101
    assert all(p.suffix == ".png" and p.parent == tmp_path and p.name.startswith(".best.") for p in names)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "best.json", '{"old": 1}')
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    except RuntimeError:
        pass
    assert target.read_text() == '{"old": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.json"]
