"""A study journal survives torn and damaged lines (issue 15, item 1).

A torn last line (what a kill or a full disk leaves) is cut back to the last complete
entry when the journal is opened and before every append, and said so; a damaged line
in the middle is one clear error naming the file and the line, and
``bitscout report RUN --repair`` rewrites the journal keeping every complete trial.
"""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage

from bitscout.cli import main
from bitscout.study import LocalJournalBackend
from bitscout.study._repair import repair_journal
from bitscout._optuna_adapter import JournalDamagedError, JournalRepairWarning

optuna.logging.set_verbosity(optuna.logging.WARNING)
TORN = b'{"op_code":5,"worker_id":"x'


def _study(path: Path, n: int) -> list[tuple]:
    storage = JournalStorage(LocalJournalBackend(str(path)))
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("k", 0, 5), n_trials=n)
    return _trials(path)


def _trials(path: Path) -> list[tuple]:
    study = optuna.load_study(storage=JournalStorage(LocalJournalBackend(str(path))), study_name="s")
    return [(t.number, t.state.name, t.params, t.values) for t in study.trials]


def test_a_torn_last_line_is_cut_on_open_and_said_so(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    trials = _study(path, 4)
    whole = path.read_bytes()
    path.write_bytes(whole + TORN)
    with pytest.warns(JournalRepairWarning) as caught:
        LocalJournalBackend(str(path))
    assert str(caught[0].message) == (
        f"{path}: its last line was cut off ({len(TORN)} bytes, {TORN[:40].decode()!r}...: an entry "
        "a killed process was writing); removed it, every complete entry is kept"
    )
    assert path.read_bytes() == whole
    assert _trials(path) == trials


def test_an_append_never_lands_on_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    _study(path, 2)
    storage = JournalStorage(LocalJournalBackend(str(path)))  # opened while the file is whole
    with open(path, "ab") as f:  # then another process is killed mid-write
        f.write(TORN)
    study = optuna.load_study(storage=storage, study_name="s")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JournalRepairWarning)
        study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("k", 0, 5), n_trials=2)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])  # every line whole
    assert len(_trials(path)) == 4


def test_a_damaged_middle_line_is_one_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    _study(path, 3)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[4] = TORN + lines[4]  # what an append onto a torn line used to leave
    path.write_bytes(b"".join(lines))
    with pytest.raises(JournalDamagedError) as caught:
        JournalStorage(LocalJournalBackend(str(path)))
    message = str(caught.value)
    assert message.startswith(f"{path}: line 5 is not a journal entry (")
    assert message.endswith(
        f"so the study cannot be read past it. Run `bitscout report {tmp_path} --repair` to rewrite "
        "the journal keeping every complete trial (the damaged file is kept beside it)"
    )


def test_repair_keeps_every_complete_trial_even_when_a_creation_line_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    trials = _study(path, 6)
    lines = path.read_bytes().splitlines(keepends=True)
    creations = [i for i, line in enumerate(lines) if json.loads(line)["op_code"] == 4]
    lines[creations[2]] = TORN + lines[creations[2]]  # a creation glued onto a torn entry
    lines[creations[4]] = b"garbage\n"  # a creation lost altogether
    damaged = b"".join(lines)
    path.write_bytes(damaged)
    report = repair_journal(path)
    assert report.salvaged == [creations[2] + 1] and report.dropped == [creations[4] + 1]
    assert report.recreated == 1 and report.trials == {"COMPLETE": 6}
    assert report.backup is not None and report.backup.read_bytes() == damaged
    assert _trials(path) == trials  # every number, state, parameter and value
    assert repair_journal(path).backup is None  # a whole journal is left alone


CONFIG = textwrap.dedent(
    """
    model = "mlp"
    dataset = "digits"
    seed = 0
    [search.search_space]
    name = "graph/quantize/mixed_precision_ptq"
    [search.search_space.setup]
    by = "name"
    [search.search_space.seed.default.config]
    name = ["NA"]
    [search.search_space.seed.fc1.config]
    name = ["integer"]
    data_in_width = [8]
    weight_width = [2, 3, 4, 8]
    bias_width = [8]
    [search.strategy]
    name = "brute_force"
    [search.strategy.sw_runner.basic_evaluation]
    data_loader = "val_dataloader"
    [search.strategy.hw_runner.average_bitwidth]
    [search.strategy.setup]
    n_trials = 4
    [search.strategy.metrics]
    accuracy.scale = 1.0
    average_bitwidth.scale = 0.01
    """
)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_report_repair_of_a_search_run_keeps_every_trial_and_the_search_resumes(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.toml"
    config.write_text(CONFIG)
    run = tmp_path / "run"
    assert main(["search", str(config), "--out", str(run), "--no-progress"]) == 0
    log = json.loads((run / "log.json").read_text())
    journal = run / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    middle = [i for i, line in enumerate(lines) if json.loads(line)["op_code"] == 4][1]
    lines[middle] = TORN + lines[middle]
    journal.write_bytes(b"".join(lines))
    capsys.readouterr()
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {journal}: line {middle + 1} is not a journal entry") and "--repair" in err
    assert main(["report", str(run), "--repair"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"repaired {journal}: 1 study(ies), trials kept: 4 COMPLETE")
    assert json.loads((run / "log.json").read_text()) == log
    # The study resumes from the repaired journal (its fingerprint was kept).
    assert main(["search", str(config), "--out", str(run), "--no-progress", "--n-trials", "5"]) == 0
    assert len(json.loads((run / "log.json").read_text())) == 4  # 4 distinct configs: exhausted
