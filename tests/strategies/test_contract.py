"""The contract every registered strategy keeps (see ``bitscout.strategies.Strategy``).

Parametrized over ``strategy_names()``: a strategy registered with
``register_strategy`` before collection (issue 5's own strategy included) runs here
without any change to this file.
"""

from __future__ import annotations

import optuna
import pytest

from bitscout.errors import ConfigError, SearchError
from bitscout.space import SearchSpace
from bitscout.strategies import (
    OPTIONS_PATH,
    Strategy,
    StrategyOptions,
    get_strategy,
    strategy_names,
)

from tests.strategies.strategy_helpers import run_ask_tell

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Optuna's GPSampler spends about a second per proposal on two small cores: it is run
# for its 10 random start-up trials and 2 modelled ones.
SLOW = {"gp": 12}
N_PROPOSALS = 20


def _names() -> list:
    return [
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
        for name in strategy_names()
    ]


def _expected_to_run(strategy: Strategy, space: SearchSpace, n_objectives: int) -> bool:
    limit = strategy.max_objectives
    return strategy.unavailable_reason(space) is None and (limit is None or n_objectives <= limit)


@pytest.mark.parametrize("name", _names())
@pytest.mark.parametrize("n_objectives", [1, 2])
def test_proposals_are_members_and_seeded_runs_repeat(
    name: str, n_objectives: int, space_na: SearchSpace
) -> None:
    strategy = get_strategy(name)
    directions = ["maximize", "minimize"][:n_objectives]
    n = SLOW.get(name, N_PROPOSALS)

    def proposals(seed: int) -> list[dict]:
        sampler = strategy.make_sampler(
            space_na, seed=seed, directions=directions, options={}, n_trials=n
        )
        assert isinstance(sampler, optuna.samplers.BaseSampler)
        study = run_ask_tell(space_na, sampler, directions, n)
        return [t.params for t in study.trials]

    if not _expected_to_run(strategy, space_na, n_objectives):
        with pytest.raises(SearchError, match=f"sampler '{name}'"):
            proposals(0)
        return

    first = proposals(7)
    assert len(first) == n  # the space has 24 distinct configurations
    dists = space_na.distributions()
    for params in first:
        assert set(params) == set(dists)
        for key, value in params.items():
            assert value in dists[key].choices
        space_na.decode(params)
    assert proposals(7) == first


@pytest.mark.parametrize("name", strategy_names())
def test_unknown_option_is_refused_with_its_path(name: str, space_na: SearchSpace) -> None:
    strategy = get_strategy(name)
    with pytest.raises(ConfigError) as err:
        strategy.make_sampler(
            space_na, seed=0, directions=["maximize"], options={"no_such_option": 3}
        )
    msg = str(err.value)
    assert f"{OPTIONS_PATH}.no_such_option" in msg
    assert "unknown option" in msg and "got 3" in msg


@pytest.mark.parametrize("name", strategy_names())
def test_declares_name_and_options(name: str) -> None:
    strategy = get_strategy(name)
    assert type(strategy).name == name
    assert issubclass(strategy.Options, StrategyOptions)
    assert strategy.Options.model_config.get("extra") == "forbid"
    strategy.parse_options({})  # every option has a default
    assert get_strategy(name.upper()).name == name
