"""Helpers of the multi-worker tests: a test-written user model, configs, worker processes.

The model (``wkmodel.py``, written into the test's folder and put on PYTHONPATH) is a
3-layer MLP on the wine data whose forward calls ``pause``, kept as a call in the traced
graph (``torch.fx.wrap``), so that every trial runs it too:

* ``WK_DELAY`` seconds of sleep per forward make trials slow (to kill a worker mid-trial);
* with ``WK_GATE`` set, each process first drops a file named after its pid into
  ``WK_READY`` and waits until the file ``WK_GATE`` exists. The model is traced while
  the search is prepared, so every worker is then held just before its first trial, and
  the test opens the gate once all of them are there: they start together;
* with ``WK_HOLD_AT`` = k, the process drops a file named after its pid into ``WK_HELD``
  at its k-th call of ``pause`` and sleeps there until it is killed. A search calls it
  :data:`PREPARATION_CALLS` times before its first trial (the gate is the first), then
  once per evaluated trial, after the trial's parameters are all set: a test that kills
  the process once the file is there kills it mid-trial, whatever the machine's load
  (a trial merely seen running could finish before the signal lands).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from bitscout.study._worker_storage import OWNER_ATTR, database_url

REPO = Path(__file__).resolve().parents[2]

MODEL = textwrap.dedent(
    '''
    import math
    import os
    import time
    from pathlib import Path

    import torch
    import torch.fx
    from torch import nn

    _CALLS = []


    def pause(x):
        _CALLS.append(True)
        gate = os.environ.get("WK_GATE")
        if gate and len(_CALLS) == 1:
            Path(os.environ["WK_READY"], str(os.getpid())).touch()
            while not os.path.exists(gate):
                time.sleep(0.02)
        if len(_CALLS) == int(os.environ.get("WK_HOLD_AT", "0")):
            Path(os.environ["WK_HELD"], str(os.getpid())).touch()
            time.sleep(600)  # until the test kills this process
        time.sleep(float(os.environ.get("WK_DELAY", "0")))
        return x


    torch.fx.wrap("pause")


    class Net(nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.fc1 = nn.Linear(n_in, 16)
            self.fc2 = nn.Linear(16, 8)
            self.fc3 = nn.Linear(8, n_out)

        def forward(self, x):
            x = pause(x.flatten(1))
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


    def build(info):
        torch.manual_seed(0)
        return Net(math.prod(info.input_shape), info.num_classes)
    '''
)

# Calls of ``pause`` before a search's first trial (the check of a user model's output,
# tracing, shapes, the float model's metrics); the next call is the first trial's forward.
PREPARATION_CALLS = 4

LAYERS = ("fc1", "fc2", "fc3")
WIDTHS = (2, 3, 4, 5, 6, 8)  # 6^3 = 216 configurations over the three layers


def config_text(
    *,
    project: str,
    strategy: str,
    n_trials: int,
    widths: dict[str, Sequence[int]] | None = None,
    storage: str | None = None,
    seed: int = 0,
) -> str:
    """A search config over the weight widths of fc1..fc3 (16 wine samples per trial)."""
    widths = widths or {layer: WIDTHS for layer in LAYERS}
    layers = "".join(
        textwrap.dedent(
            f"""
            [search.search_space.seed.{layer}.config]
            name = ["integer"]
            data_in_width = [8]
            weight_width = {list(widths[layer])}
            bias_width = [8]
            """
        )
        for layer in LAYERS
    )
    if strategy == "brute_force":
        strategy_lines = 'name = "brute_force"'
        sampler_line = ""
    else:
        strategy_lines = 'name = "optuna"'
        sampler_line = f'sampler = "{strategy}"'
    storage_line = f'storage = "{storage}"' if storage else ""
    return textwrap.dedent(
        f"""
        model = "wkmodel:build"
        dataset = "wine"
        batch_size = 64
        seed = {seed}
        project = "{project}"

        [search.search_space]
        name = "graph/quantize/mixed_precision_ptq"
        [search.search_space.setup]
        by = "name"
        [search.search_space.seed.default.config]
        name = ["NA"]
        """
    ) + layers + textwrap.dedent(
        f"""
        [search.strategy]
        {strategy_lines}
        [search.strategy.sw_runner.basic_evaluation]
        data_loader = "val_dataloader"
        num_samples = 16
        [search.strategy.hw_runner.average_bitwidth]
        compare_to = 32
        [search.strategy.setup]
        n_trials = {n_trials}
        {sampler_line}
        {storage_line}
        sum_scaled_metrics = true
        direction = "maximize"
        [search.strategy.metrics]
        accuracy.scale = 1.0
        average_bitwidth.scale = 0.02
        """
    )


def all_configs(widths: dict[str, Sequence[int]] | None = None) -> set[tuple[int, ...]]:
    """Every configuration of the space, enumerated independently of bitscout."""
    widths = widths or {layer: WIDTHS for layer in LAYERS}
    return set(itertools.product(*(widths[layer] for layer in LAYERS)))


def config_of(trial: FrozenTrial) -> tuple[int, ...]:
    """The weight widths (fc1, fc2, fc3) a trial evaluated."""
    return tuple(int(trial.params[f"{layer}/weight_width"]) for layer in LAYERS)


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Workspace:
    """A test folder with the model module, a config and the environment of workers.

    Args:
        path: The test's tmp_path.
        delay: Seconds of sleep per forward (``WK_DELAY``).
        gate: Hold every worker before its first trial until :meth:`open_gate`.
    """

    def __init__(self, path: Path, *, delay: float = 0.0, gate: bool = True) -> None:
        self.path = path
        (path / "wkmodel.py").write_text(MODEL)
        self.ready = path / "ready"
        self.ready.mkdir()
        self.held = path / "held"
        self.held.mkdir()
        self.gate = path / "gate"
        env = dict(os.environ)
        paths = [str(path), env.get("PYTHONPATH", ""), str(REPO / "src")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["WK_DELAY"] = str(delay)
        env["OMP_NUM_THREADS"] = "1"
        env["PYTHONHASHSEED"] = "0"
        env["MPLBACKEND"] = "Agg"
        env["WK_HELD"] = str(self.held)
        if gate:
            env["WK_GATE"] = str(self.gate)
            env["WK_READY"] = str(self.ready)
        self.env = env

    def write_config(self, name: str, text: str) -> Path:
        path = self.path / name
        path.write_text(text)
        return path

    def start(
        self, argv: Sequence[str], log_name: str, *, hold_at: int | None = None
    ) -> subprocess.Popen[bytes]:
        """Start ``python -m bitscout <argv>`` with its output in ``<log_name>.log``.

        ``hold_at``: hold the process at that call of ``pause`` (see the module docstring).
        """
        log = open(self.path / f"{log_name}.log", "wb")  # noqa: SIM115  (closed with the process)
        env = self.env if hold_at is None else {**self.env, "WK_HOLD_AT": str(hold_at)}
        return subprocess.Popen(
            [sys.executable, "-m", "bitscout", *argv],
            cwd=self.path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log(self, log_name: str) -> str:
        return (self.path / f"{log_name}.log").read_text(errors="replace")

    def open_gate_when_ready(self, n: int, procs: Sequence[subprocess.Popen[bytes]], timeout: float = 600.0) -> None:
        """Wait until ``n`` processes wait at the gate, then let them all go."""
        deadline = time.monotonic() + timeout
        while len(list(self.ready.iterdir())) < n:
            dead = [p for p in procs if p.poll() is not None]
            assert not dead, f"a worker exited before its first trial: {[p.args for p in dead]}"
            assert time.monotonic() < deadline, "the workers did not get ready in time"
            time.sleep(0.05)
        self.gate.touch()


def wait_all(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 600.0) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            for q in procs:
                if q.poll() is None:
                    q.kill()
            raise AssertionError("the workers did not finish in time") from None
    return codes


def read_trials(url: str, study_name: str) -> list[FrozenTrial]:
    """Every trial of a study, read with a plain Optuna storage (no bitscout code)."""
    if url.endswith(".journal"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage: Any = JournalStorage(JournalFileBackend(url))
    else:
        storage = optuna.storages.RDBStorage(database_url(url), skip_compatibility_check=True)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return []
    return storage.get_all_trials(study_id, deepcopy=False)


def owner_pid(trial: FrozenTrial) -> int | None:
    owner = trial.system_attrs.get(OWNER_ATTR)
    return None if owner is None else int(owner["pid"])


def poll(condition: Callable[[], Any], *, timeout: float, what: str, every: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def counted(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Finished trials that count toward n_trials (a lost trial's FAIL does not)."""
    return [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and "bitscout_record" in t.user_attrs)
    ]
