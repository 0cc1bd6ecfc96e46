"""`bitscout search --workers K`: K local worker processes on the run folder's journal file.

No database: the default storage (``<run folder>/study.journal``) is shared by the
worker processes through a file lock. The command is run in this process (so that the
test can open the workers' gate while it waits); the workers are real
``python -m bitscout search`` processes that it starts.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from optuna.trial import TrialState

from bitscout.cli import main
from bitscout.study import DUPLICATE_ATTR
from tests.cli.test_search_cli import TOML
from tests.workers.workers_helpers import (
    Workspace,
    all_configs,
    config_of,
    config_text,
    owner_pid,
    read_trials,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a hang; not the machine's load

WIDTHS = {"fc1": (2, 3, 4, 5, 6, 8), "fc2": (4, 8), "fc3": (4, 8)}  # 24 configurations


def test_workers_option_shares_the_run_folder_journal_and_writes_the_outputs_once(tmp_path, monkeypatch, capsys):
    ws = Workspace(tmp_path, delay=0.05)
    for key in ("PYTHONPATH", "WK_DELAY", "WK_GATE", "WK_READY", "OMP_NUM_THREADS"):
        monkeypatch.setenv(key, ws.env[key])
    # search checks the config as check does before it starts workers, importing the
    # model factory in this process too, as it would with PYTHONPATH set from the start.
    monkeypatch.syspath_prepend(str(tmp_path))
    config = ws.write_config("bf.toml", config_text(project="local", strategy="brute_force", n_trials=1000, widths=WIDTHS))
    run_dir = tmp_path / "run"

    codes: list[int] = []
    command = threading.Thread(
        target=lambda: codes.append(main(["search", str(config), "--workers", "2", "--out", str(run_dir), "--no-progress"]))
    )
    command.start()
    try:
        ws.open_gate_when_ready(2, [])
    finally:
        command.join(timeout=880)
    printed = capsys.readouterr().out
    worker_logs = sorted((run_dir / "workers").glob("worker-*.log"))
    assert codes == [0], printed + "".join(p.read_text() for p in worker_logs)

    trials = read_trials(str(run_dir / "study.journal"), "local")
    assert Counter(config_of(t) for t in trials) == Counter(all_configs(WIDTHS))  # each once
    assert all(t.state == TrialState.COMPLETE and DUPLICATE_ATTR not in t.user_attrs for t in trials)
    owners = {owner_pid(t) for t in trials}
    assert len(owners) == 2 and None not in owners  # two processes shared the work

    # The command wrote the outputs of the whole study, once, like a one-process search.
    log = json.loads((run_dir / "log.json").read_text())
    assert sorted(r["number"] for r in log) == list(range(24))
    top = max(t.values[0] for t in trials)
    best = json.loads((run_dir / "best.json").read_text())["best"]
    assert best["values"] == [top] and best["number"] == min(t.number for t in trials if t.values[0] == top)
    assert (run_dir / "config.toml").is_file() and (run_dir / "objective.png").is_file()
    assert [p.name for p in worker_logs] == ["worker-0.log", "worker-1.log"]
    assert all("worker done" in p.read_text() for p in worker_logs)
    assert "2 worker processes" in printed
    assert f"optuna-dashboard {run_dir / 'study.journal'}" in printed

    # `bitscout report RUN_DIR` reads the same study back and writes the same records.
    (run_dir / "log.json").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert json.loads((run_dir / "log.json").read_text()) == log
    assert "pip install optuna-dashboard" in capsys.readouterr().out


def test_report_says_what_is_wrong(tmp_path, capsys):
    assert main(["report"]) == 2
    assert "say which search to report" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    journal = tmp_path / "run" / "study.journal"
    journal.parent.mkdir()
    import optuna

    from bitscout.study._worker_storage import open_worker_storage

    storage, _ = open_worker_storage(str(journal), journal.parent)
    for name in ("a", "b"):
        optuna.create_study(storage=storage, study_name=name)
    assert main(["report", str(journal.parent)]) == 2
    assert "holds 2 studies ('a', 'b'); say which one with --study-name" in capsys.readouterr().err
    assert main(["report", "--storage", str(journal), "--study-name", "c"]) == 2
    assert "no study named 'c'" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_workers_that_all_stop_on_one_bad_input_give_one_error_and_no_stale_report(tmp_path, capsys):
    # A study of one objective in the run folder, then --workers 2 with two objectives:
    # each worker refuses to resume it (exit 2); the command says so once, exit 2, and
    # does not print the old study's summary as if it were this search's.
    run_dir = tmp_path / "run"
    summed = tmp_path / "summed.toml"
    summed.write_text(TOML)  # tests/cli's tiny digits search: one summed objective
    assert main(["search", str(summed), "--out", str(run_dir), "--no-progress"]) == 0
    capsys.readouterr()
    pareto = tmp_path / "pareto.toml"
    pareto.write_text(TOML.replace('sampler = "tpe"', 'sampler = "tpe"\nsum_scaled_metrics = false'))
    assert main(["search", str(pareto), "--out", str(run_dir), "--workers", "2", "--no-progress"]) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, captured.err
    assert "cannot be resumed" in errors[0] and "all 2 worker processes stopped on it" in errors[0]
    assert "best trial" not in captured.out and "Traceback" not in captured.err
