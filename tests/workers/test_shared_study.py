"""Four real `python -m bitscout search` worker processes sharing one PostgreSQL study.

What users run on many machines, run here on one: the same command in several
processes, with one ``--storage postgresql://...`` and ``--study-name``. Each test holds
its workers at a gate just before their first trial (see workers_helpers.py) and lets
them go together, so that they really share the work. Every check reads the study back
with plain Optuna, and compares it with an enumeration of the space written here.
"""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest
from optuna.trial import TrialState
from tests.workers.workers_helpers import (
    PREPARATION_CALLS,
    Workspace,
    all_configs,
    config_of,
    config_text,
    counted,
    owner_pid,
    poll,
    read_trials,
    unique_name,
    wait_all,
)

from bitscout.study import DUPLICATE_ATTR
from bitscout.study._index import RETRY_ATTR

# Generous limits: they catch a hang, and under CI-like load (load average 17 on 2 cores)
# the brute-force fixture alone took 280 s (90 s of it for four workers to import torch).
pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.timeout(900)]

WORKERS = 4


def _start_workers(ws: Workspace, config, url: str, name: str, n: int = WORKERS, hold_first_at: int | None = None):
    """Start ``n`` workers and let them go together; the first is held at ``hold_first_at``."""
    procs = [
        ws.start(
            ["search", str(config), "--storage", url, "--study-name", name, "--out", str(ws.path / f"run{i}"), "--no-progress"],
            f"worker{i}",
            hold_at=hold_first_at if i == 0 else None,
        )
        for i in range(n)
    ]
    ws.open_gate_when_ready(n, procs)
    return procs


def _logs(ws: Workspace, n: int = WORKERS) -> str:
    return "\n".join(f"--- worker{i}\n{ws.log(f'worker{i}')[-3000:]}" for i in range(n))


@pytest.fixture(scope="module")
def brute_force_study(postgres_url, tmp_path_factory):
    """Four workers run brute force over the 216 configurations of the space, once."""
    ws = Workspace(tmp_path_factory.mktemp("bf"), delay=0.01)
    name = unique_name("bf")
    config = ws.write_config("bf.toml", config_text(project="bf", strategy="brute_force", n_trials=1000))
    procs = _start_workers(ws, config, postgres_url, name)
    codes = wait_all(procs)
    assert codes == [0] * WORKERS, _logs(ws)
    return ws, name, procs, read_trials(postgres_url, name)


def test_brute_force_evaluates_each_configuration_exactly_once_across_workers(brute_force_study):
    ws, name, procs, trials = brute_force_study
    space = all_configs()
    assert len(space) == 216
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    evaluated = [t for t in complete if DUPLICATE_ATTR not in t.user_attrs]
    # Exactly the space, each configuration by exactly one trial; nothing else was asked.
    assert Counter(config_of(t) for t in evaluated) == Counter(space)
    assert len(evaluated) == len(complete) == len(trials) == 216
    # The four workers shared the work (each process records itself on its trials).
    owners = Counter(owner_pid(t) for t in trials)
    assert set(owners) == {p.pid for p in procs}, owners
    # Each worker stopped because the space was exhausted, not because of n_trials.
    for i in range(WORKERS):
        assert "configurations is evaluated" in ws.log(f"worker{i}") or "proposed every configuration" in ws.log(f"worker{i}")


def test_report_of_the_shared_study_writes_the_outputs_of_a_local_search(brute_force_study, postgres_url):
    ws, name, _, trials = brute_force_study
    out = ws.path / "report"
    proc = ws.start(["report", "--storage", postgres_url, "--study-name", name, "--out", str(out)], "report")
    assert proc.wait(timeout=600) == 0, ws.log("report")
    text = ws.log("report")

    log = json.loads((out / "log.json").read_text())
    assert sorted(r["number"] for r in log) == sorted(t.number for t in trials)
    by_number = {t.number: t for t in trials}
    for record in log:  # each record is the stored trial, metrics and all
        trial = by_number[record["number"]]
        assert record["values"] == list(trial.values)
        assert record["software_metrics"]["accuracy"] == trial.user_attrs["bitscout_record"]["software_metrics"]["accuracy"]
        assert record["sampled_config"]["fc1"]["weight_width"] == trial.params["fc1/weight_width"]

    # The best trial: the highest objective, the earliest trial number on ties.
    top = max(t.values[0] for t in trials)
    expected = min(t.number for t in trials if t.values[0] == top)
    best = json.loads((out / "best.json").read_text())
    assert best["best"]["number"] == expected and best["best"]["values"] == [top]
    assert best["n_trials"] == best["n_unique"] == 216

    rows = (out / "trials.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 216
    for plot in ("objective.png", "best_widths.png"):
        assert (out / plot).stat().st_size > 1000
    # The hint names the installed driver (psycopg2): SQLAlchemy 2.1 maps a bare
    # postgresql:// to psycopg 3, so the URL as given would not open in the dashboard.
    assert f"optuna-dashboard {postgres_url.replace('postgresql://', 'postgresql+psycopg2://')}" in text
    assert "pip install optuna-dashboard" in text


def test_tpe_with_four_workers_stops_at_exactly_n_trials_in_total(postgres_url, tmp_path):
    ws = Workspace(tmp_path, delay=0.01)
    name = unique_name("tpe")
    config = ws.write_config("tpe.toml", config_text(project="tpe", strategy="tpe", n_trials=100))
    procs = _start_workers(ws, config, postgres_url, name)
    assert wait_all(procs) == [0] * WORKERS, _logs(ws)

    trials = read_trials(postgres_url, name)
    assert len(counted(trials)) == 100
    assert len(trials) == 100  # not one trial started past the budget
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({owner_pid(t) for t in trials}) == WORKERS
    # A configuration TPE proposed twice was evaluated once and answered from the study.
    evaluated = [t for t in trials if DUPLICATE_ATTR not in t.user_attrs]
    assert len({config_of(t) for t in evaluated}) == len(evaluated)
    for t in trials:
        if DUPLICATE_ATTR in t.user_attrs:
            first = trials[t.user_attrs[DUPLICATE_ATTR]]
            assert config_of(first) == config_of(t) and first.values == t.values


# 6 x 2 x 2 = 24 configurations.
KILL_WIDTHS = {"fc1": (2, 3, 4, 5, 6, 8), "fc2": (4, 8), "fc3": (4, 8)}


def test_a_worker_killed_mid_trial_loses_no_finished_trial_and_its_trial_is_retried(postgres_url, tmp_path):
    ws = Workspace(tmp_path, delay=0.05)
    name = unique_name("kill")
    text = config_text(project="kill", strategy="brute_force", n_trials=1000, widths=KILL_WIDTHS)
    config = ws.write_config("kill.toml", text)
    # The victim is held in the forward of its second trial, so the kill lands mid-trial
    # with every parameter set and one trial of its own finished, however the machine is
    # loaded. (Killing a trial merely seen running raced twice on CI: the trial finished
    # before the signal landed, or the victim was caught between two suggestions.)
    procs = _start_workers(ws, config, postgres_url, name, hold_first_at=PREPARATION_CALLS + 2)
    victim = procs[0]

    def others_finished_a_trial():
        trials = read_trials(postgres_url, name)
        done = [t for t in trials if t.state == TrialState.COMPLETE and owner_pid(t) != victim.pid]
        return trials if done else None

    try:
        poll(lambda: (ws.held / str(victim.pid)).exists() or victim.poll() is not None,
             timeout=600, what="the victim worker to reach its second trial")
        assert victim.poll() is None, _logs(ws)
        # The other workers go on meanwhile: wait for a finished trial of theirs too.
        trials = poll(others_finished_a_trial, timeout=600, what="another worker to finish a trial")
        mine = [t for t in trials if owner_pid(t) == victim.pid]
        assert [t.state for t in mine] == [TrialState.COMPLETE, TrialState.RUNNING], mine
        killed = mine[1]
        assert len(killed.params) == len(KILL_WIDTHS)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    except BaseException:
        for p in procs:  # a held victim would sleep on, and the others wait for its trial
            p.kill()
        raise
    before = {t.number: t for t in read_trials(postgres_url, name) if t.state == TrialState.COMPLETE}
    assert len(before) >= 2 and {owner_pid(t) for t in before.values()} >= {victim.pid}

    assert wait_all(procs[1:]) == [0] * (WORKERS - 1), _logs(ws)
    after = {t.number: t for t in read_trials(postgres_url, name)}

    # Every trial finished before the kill is still there, unchanged (the victim's too).
    for number, old in before.items():
        new = after[number]
        assert (new.state, new.values, new.params, new.user_attrs) == (old.state, old.values, old.params, old.user_attrs)
    # The killed worker's trial was failed (its process is gone) and its configuration retried.
    assert after[killed.number].state == TrialState.FAIL
    retries = [t for t in after.values() if t.user_attrs.get(RETRY_ATTR) == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == killed.params and owner_pid(retries[0]) != victim.pid
    # The study completed: every configuration evaluated exactly once, by the survivors
    # or by the victim before its death, and nothing is left running or queued.
    evaluated = [t for t in after.values() if t.state == TrialState.COMPLETE and DUPLICATE_ATTR not in t.user_attrs]
    assert Counter(config_of(t) for t in evaluated) == Counter(all_configs(KILL_WIDTHS))
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in after.values())
    assert [t.number for t in after.values() if t.state == TrialState.FAIL] == [killed.number]
