"""A real `python -m bitscout search` killed with SIGKILL mid-trial, then run again.

The model (a user model module written here, on PYTHONPATH) holds the process in the
forward of its third evaluated trial, where the test kills it: the kill lands while that
trial is RUNNING with every parameter set, however loaded the machine is (killing a trial
merely seen running could land after it finished, or between two suggestions). The rerun
must keep every finished trial as it was and evaluate the interrupted configuration
before anything else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

pytestmark = pytest.mark.slow

SLOWMOD = textwrap.dedent(
    '''
    import math
    import os
    import time

    import torch
    import torch.fx
    from torch import nn


    _CALLS = []


    def pause(x):
        _CALLS.append(True)
        if len(_CALLS) == int(os.environ.get("SLOWMOD_HOLD_AT", "0")):
            open(os.environ["SLOWMOD_HELD"], "w").close()
            time.sleep(600)  # until the test kills this process
        return x


    torch.fx.wrap("pause")  # kept as a call in the traced graph, so trials call it too


    class Slow(nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.fc1 = nn.Linear(n_in, 16)
            self.fc2 = nn.Linear(16, n_out)

        def forward(self, x):
            x = pause(x.flatten(1))
            return self.fc2(torch.relu(self.fc1(x)))


    def build(info):
        torch.manual_seed(0)
        return Slow(math.prod(info.input_shape), info.num_classes)
    '''
)

CONFIG = textwrap.dedent(
    '''
    model = "slowmod:build"
    dataset = "digits"
    seed = 0
    project = "slow"

    [search.search_space]
    name = "graph/quantize/mixed_precision_ptq"
    [search.search_space.setup]
    by = "name"
    [search.search_space.seed.default.config]
    name = ["NA"]
    [search.search_space.seed.fc1.config]
    name = ["integer"]
    data_in_width = [8]
    weight_width = [2, 3, 4, 5, 6, 8]
    bias_width = [8]
    [search.search_space.seed.fc2.config]
    name = ["integer"]
    data_in_width = [8]
    weight_width = [2, 3, 4, 5, 6, 8]
    bias_width = [8]

    [search.strategy]
    name = "optuna"
    [search.strategy.sw_runner.basic_evaluation]
    num_samples = 64
    [search.strategy.hw_runner.average_bitwidth]
    [search.strategy.setup]
    n_trials = 5
    sampler = "random"
    [search.strategy.metrics]
    accuracy.scale = 1.0
    average_bitwidth.scale = 0.01
    '''
)


def _trials(journal: Path, storage=None):
    storage = storage or JournalStorage(JournalFileBackend(str(journal)))
    try:
        study_id = storage.get_study_id_from_name("slow")
    except KeyError:
        return []
    return storage.get_all_trials(study_id, deepcopy=False)


# Calls of ``pause`` before the first trial (the check of a user model's output, tracing,
# shapes, the float model's metrics); then one per evaluated trial (a duplicate is
# answered from the study, without a forward).
PREPARATION_CALLS = 4


def _command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), src, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "bitscout", "search", str(tmp_path / "slow.toml"), "--out", str(tmp_path / "run"), "--no-progress"]
    return cmd, env


def test_sigkill_mid_trial_loses_no_finished_trial_and_reruns_the_interrupted_one(tmp_path):
    (tmp_path / "slowmod.py").write_text(SLOWMOD)
    (tmp_path / "slow.toml").write_text(CONFIG)
    journal = tmp_path / "run" / "study.journal"
    cmd, env = _command(tmp_path)

    held = tmp_path / "held"
    hold = {**env, "SLOWMOD_HOLD_AT": str(PREPARATION_CALLS + 3), "SLOWMOD_HELD": str(held)}
    proc = subprocess.Popen(cmd, env=hold, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 400  # a hang; a loaded machine takes minutes to start
        while not held.exists():
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the search did not reach its third trial in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    before = _trials(journal)
    finished = {t.number: t for t in before if t.state.is_finished()}
    running = [t for t in before if t.state == TrialState.RUNNING]
    assert len(finished) >= 2 and len(running) == 1, "the kill must land while a trial runs"
    interrupted = running[0]
    assert len(interrupted.params) == 2  # every parameter set: its rerun is the same configuration

    rerun = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr

    after = {t.number: t for t in _trials(journal)}
    for number, old in finished.items():  # every finished trial kept, unchanged
        new = after[number]
        assert (new.state, new.values, new.params, new.user_attrs) == (old.state, old.values, old.params, old.user_attrs)
    assert after[interrupted.number].state == TrialState.FAIL  # marked, and not counted
    retry = after[interrupted.number + 1]
    assert retry.params == interrupted.params and retry.state == TrialState.COMPLETE
    counted = [t for t in after.values() if t.state.is_finished() and t.number != interrupted.number]
    assert len(counted) == 5
    assert "best trial:" in rerun.stdout
