"""What the default crash-safe storage costs per trial over Optuna's in-memory storage.

Target (issue 6): at most ~3 ms per trial more than in-memory. The assertion here is
looser (this machine is shared and noisy); the measured figure is printed (-s) and
recorded in the search helper's report.
"""

from __future__ import annotations

import statistics
import time

import optuna
import pytest
from tests.study.study_toy import ToyObjective, ToyRunners, ToySpace

from bitscout.evaluation import RunnerEvaluator
from bitscout.study import run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.slow

SPACE = {"fc1": (2, 3, 4, 5, 6, 8), "fc2": (2, 3, 4, 5, 6, 8), "fc3": (2, 3, 4, 5, 6, 8)}


def _per_trial_ms(tmp_path, storage, n):
    start = time.perf_counter()
    result = run_search(
        ToySpace(SPACE), optuna.samplers.RandomSampler(seed=0), RunnerEvaluator(ToyRunners(), ToyObjective()),
        out_dir=tmp_path, storage=storage, n_trials=n, progress=False, write_outputs=False,
    )
    assert result.n_trials == n
    return (time.perf_counter() - start) / n * 1e3


def test_journal_storage_costs_a_few_ms_per_trial_over_memory(tmp_path):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    n = 100
    rounds = []
    for i in range(3):  # interleaved, so that load changes hit every storage alike
        memory = _per_trial_ms(tmp_path / f"m{i}", optuna.storages.InMemoryStorage(), n)
        ours = _per_trial_ms(tmp_path / f"j{i}", None, n)
        stock_file = tmp_path / f"s{i}.journal"
        stock = _per_trial_ms(tmp_path / f"s{i}", JournalStorage(JournalFileBackend(str(stock_file))), n)
        rounds.append((memory, ours, stock))
    mem, ours, stock = (statistics.median(r[k] for r in rounds) for k in range(3))
    print(f"\nper trial over {n} trials: in-memory {mem:.2f} ms; bitscout journal {ours:.2f} ms "
          f"(+{ours - mem:.2f}); Optuna's stock journal file {stock:.2f} ms (+{stock - mem:.2f})")
    assert ours - mem < 10.0
    assert ours < stock
