"""The loop with bitscout's real space, strategies, quantizer, runners and objective on the
digits MLP: brute force against an independent enumeration, dedup, repeatability."""

from __future__ import annotations

import textwrap

import optuna
import pytest

from bitscout.config import load_config
from bitscout.strategies import get_strategy
from bitscout.evaluation import RunnerEvaluator, TableEvaluator
from bitscout.study import prepare_search, run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TOML = textwrap.dedent(
    """
    model = "mlp"
    dataset = "digits"
    seed = 0
    project = "real"

    [search.search_space]
    name = "graph/quantize/mixed_precision_ptq"
    [search.search_space.setup]
    by = "name"
    [search.search_space.seed.default.config]
    name = ["NA"]
    [search.search_space.seed.fc1.config]
    name = ["integer"]
    data_in_width = [8]
    weight_width = [2, 8]
    bias_width = [8]
    [search.search_space.seed.fc2.config]
    name = ["integer"]
    data_in_width = [3, 8]
    weight_width = [2, 4, 8]
    bias_width = [8]
    [search.search_space.seed.fc3.config]
    name = ["NA", "integer"]
    data_in_width = [8]
    weight_width = [3]
    bias_width = [8]

    [search.strategy]
    name = "brute_force"
    [search.strategy.sw_runner.basic_evaluation]
    num_samples = 200
    [search.strategy.hw_runner.average_bitwidth]
    [search.strategy.setup]
    n_trials = 100
    [search.strategy.metrics]
    accuracy.scale = 1.0
    average_bitwidth.scale = 0.01
    """
)


class Counting:
    """The real runner set, counting the configurations it is asked to measure."""

    def __init__(self, inner, space):
        self.inner, self.space, self.calls = inner, space, []

    def run(self, config):
        self.calls.append(self.space.key(config))
        return self.inner.run(config)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "real.toml"
    path.write_text(TOML)
    return prepare_search(load_config(path))


def _sampler(prepared, name, seed=0):
    return get_strategy(name).make_sampler(prepared.space, seed=seed, directions=prepared.objective.directions, options={}, n_trials=100)


def test_brute_force_evaluates_each_configuration_once_and_its_best_is_the_enumerated_optimum(prepared, tmp_path):
    space, objective = prepared.space, prepared.objective
    runners = Counting(prepared.runners, space)
    result = run_search(space, prepared.sampler, RunnerEvaluator(runners, objective), out_dir=tmp_path, n_trials=100, progress=False, write_outputs=False)

    # Independent enumeration: every parameter vector, measured directly.
    enumerated = {}
    for params in space:
        config = space.decode(params)
        enumerated.setdefault(space.key(config), objective.evaluate(prepared.runners.run(config)).values[0])
    assert space.distinct_size == len(enumerated) == 2 * 6 * 2
    assert sorted(runners.calls, key=repr) == sorted(enumerated, key=repr)  # each exactly once
    assert result.n_unique == len(enumerated) and result.n_duplicates == 0
    best_value = max(enumerated.values())
    assert result.best.values[0] == best_value
    best_key = space.key(space.decode(result.best.params))
    assert enumerated[best_key] == best_value


def test_duplicates_are_not_measured_again(prepared, tmp_path):
    space = prepared.space
    runners = Counting(prepared.runners, space)
    result = run_search(space, _sampler(prepared, "tpe"), RunnerEvaluator(runners, prepared.objective), out_dir=tmp_path, n_trials=40, progress=False, write_outputs=False)
    assert len(runners.calls) == len(set(runners.calls)) == result.n_unique
    assert result.n_unique + result.n_duplicates + result.n_failed == result.n_trials
    by_number = {t.number: t for t in result.trials}
    for t in result.trials:
        if t.duplicate_of is not None:
            assert space.key(space.decode(t.params)) == space.key(space.decode(by_number[t.duplicate_of].params))
            assert t.values == by_number[t.duplicate_of].values


def test_same_configuration_in_two_studies_gives_identical_metrics(prepared, tmp_path):
    space = prepared.space
    a = run_search(space, _sampler(prepared, "random", 1), RunnerEvaluator(prepared.runners, prepared.objective), out_dir=tmp_path / "a", n_trials=10, progress=False, write_outputs=False)
    b = run_search(space, _sampler(prepared, "random", 2), RunnerEvaluator(prepared.runners, prepared.objective), out_dir=tmp_path / "b", n_trials=10, progress=False, write_outputs=False)
    first = {space.key(space.decode(t.params)): t for t in a.complete}
    common = [t for t in b.complete if space.key(space.decode(t.params)) in first]
    assert common, "the two studies share no configuration; change a seed"
    for t in common:
        other = first[space.key(space.decode(t.params))]
        assert t.software_metrics == other.software_metrics
        assert t.hardware_metrics == other.hardware_metrics
        assert t.values == other.values


def test_prepared_brute_force_over_the_whole_space_reads_a_precomputed_table(prepared, tmp_path, monkeypatch):
    # n_trials (100) covers the whole space: PreparedSearch.run evaluates every
    # configuration at once and the trials read that table; the metrics must be the
    # ones the plain runners give, configuration by configuration.
    used = []
    original = run_search

    def spy(space, sampler, evaluator, *args, **kwargs):
        used.append(evaluator)
        return original(space, sampler, evaluator, *args, **kwargs)

    monkeypatch.setattr("bitscout.study._from_config.run_search", spy)
    monkeypatch.setattr(prepared, "out_dir", tmp_path)
    result = prepared.run(progress=False)
    assert isinstance(used[0], TableEvaluator)
    assert result.n_unique == prepared.space.distinct_size
    for trial in result.complete:
        direct = prepared.runners.run(prepared.space.decode(trial.params))
        # The table skips the loss, which neither the objective nor a constraint reads.
        assert "loss" not in trial.software_metrics
        assert trial.software_metrics == {k: v for k, v in direct.software.items() if k != "loss"}
        assert trial.hardware_metrics == direct.hardware


def test_prepared_search_runs_trials_on_one_cpu_thread_and_restores_the_setting(prepared, tmp_path, monkeypatch):
    import torch

    seen = []
    original = run_search

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr("bitscout.study._from_config.run_search", spy)
    monkeypatch.setattr(prepared, "out_dir", tmp_path)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        prepared.run(progress=False, write_outputs=False, precompute=False)
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_baseline_is_the_float_model_scored_by_the_objective(prepared, tmp_path):
    evaluator = RunnerEvaluator(prepared.runners, prepared.objective)
    result = run_search(prepared.space, _sampler(prepared, "random"), evaluator, out_dir=tmp_path, n_trials=2, progress=False, write_outputs=False, baseline=True)
    reference = prepared.runners.reference()
    assert result.baseline is not None and result.baseline.metrics == reference
    assert result.baseline.values == tuple(prepared.objective.evaluate(reference).values)
    assert reference["average_bitwidth"] == 32.0  # the float model: every tensor in 32 bits
    no_baseline = run_search(prepared.space, _sampler(prepared, "random"), evaluator, out_dir=tmp_path / "b", n_trials=1, progress=False, write_outputs=False)
    assert no_baseline.baseline is None


def _study_contents(out_dir, name="real"):
    """Every trial of a run folder's journal: what the loop and the table pass must agree on."""
    from bitscout.study._index import RECORD_ATTR
    from bitscout.study._worker_storage import open_storage

    store, _ = open_storage(None, out_dir)
    study = optuna.load_study(study_name=name, storage=store)
    rows = []
    for t in study.trials:
        attrs = {k: v for k, v in t.user_attrs.items()}
        record = dict(attrs.pop(RECORD_ATTR))
        record.pop("duration_s", None)
        rows.append((t.number, t.state, t.params, t.values, record, attrs, t.constraints))
    return rows


def _table(prepared):
    return TableEvaluator.from_runners(prepared.space, prepared.runners, prepared.objective)


def test_brute_force_from_a_table_writes_the_trials_the_loop_writes_in_fewer_entries(prepared, tmp_path):
    table = _table(prepared)
    fast = run_search(prepared.space, _sampler(prepared, "brute_force"), table, out_dir=tmp_path / "fast", study_name="real", n_trials=100, progress=False, write_outputs=False)
    slow = run_search(prepared.space, _sampler(prepared, "brute_force"), table, out_dir=tmp_path / "slow", study_name="real", n_trials=100, progress=False, write_outputs=False, table_pass=False)
    assert fast.n_unique == slow.n_unique == prepared.space.distinct_size == 24
    assert fast.stop_reason == slow.stop_reason
    got, want = _study_contents(tmp_path / "fast"), _study_contents(tmp_path / "slow")
    assert len(got) == 24 and got == want
    assert all(row[1] == optuna.trial.TrialState.COMPLETE and row[4]["sampled_config"] for row in got)
    # One journal entry per trial instead of the loop's one per parameter, record and tell.
    entries = {k: len((tmp_path / k / "study.journal").read_text().splitlines()) for k in ("fast", "slow")}
    assert entries["fast"] <= entries["slow"] - 3 * 24, entries


def test_brute_force_from_a_table_resumes_a_capped_run_and_reuses_another_strategys_trials(prepared, tmp_path):
    space, table = prepared.space, _table(prepared)
    # Another strategy first, then a brute force capped at 10 trials, then the rest.
    run_search(space, _sampler(prepared, "random", 3), table, out_dir=tmp_path, study_name="real", n_trials=6, progress=False, write_outputs=False)
    capped = run_search(space, _sampler(prepared, "brute_force"), table, out_dir=tmp_path, study_name="real", n_trials=16, progress=False, write_outputs=False)
    assert capped.n_trials == 16 and capped.stop_reason == "reached n_trials = 16"
    done = run_search(space, _sampler(prepared, "brute_force"), table, out_dir=tmp_path, study_name="real", n_trials=100, progress=False, write_outputs=False)
    assert done.stop_reason.startswith("every one of the 24 configurations")
    by_number = {t.number: t for t in done.trials}
    firsts = [t for t in done.trials if t.duplicate_of is None]
    keys = [space.key(space.decode(t.params)) for t in firsts]
    assert len(keys) == len(set(keys)) == 24  # every configuration evaluated once
    sampler = _sampler(prepared, "brute_force")
    for t in done.trials:
        if 6 <= t.number < 24:  # the main pass: trial n holds the n-th configuration
            assert space.key(space.decode(t.params)) == space.key(space.decode(sampler.params_for(t.number)))
        if t.duplicate_of is not None:  # a configuration the random trials had: not measured again
            first = by_number[t.duplicate_of]
            assert first.number < 6 and t.values == first.values
            assert space.key(space.decode(t.params)) == space.key(space.decode(first.params))
    assert sum(t.duplicate_of is not None for t in done.trials) == done.n_trials - 24
