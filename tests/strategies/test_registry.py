"""The strategy registry, option validation, and what bitscout passes to Optuna."""

from __future__ import annotations

import warnings
from typing import ClassVar

import optuna
import pytest
from tests.strategies.strategy_helpers import run_ask_tell

from bitscout.errors import ConfigError, SearchError
from bitscout.space import SearchSpace
from bitscout.strategies import (
    Strategy,
    StrategyOptions,
    genetic_population_size,
    get_strategy,
    reference_point_count,
    register_strategy,
    strategy_names,
)
from bitscout.strategies import _base

MAX = ["maximize"]


def test_builtin_names_and_aliases() -> None:
    assert set(strategy_names()) >= {
        "tpe", "random", "nsgaii", "nsgaiii", "qmc", "cmaes", "gp", "brute_force"
    }
    for spelling in ("brute_force", "Brute-Force", "bruteforce", "brute"):
        assert get_strategy(spelling).name == "brute_force"
    assert get_strategy("TPE").name == "tpe"


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(ConfigError) as err:
        get_strategy("tpx")
    msg = str(err.value)
    assert "'tpx'" in msg and "Did you mean 'tpe'?" in msg
    assert ", ".join(strategy_names()) in msg


def test_a_registered_strategy_joins_the_registry(
    monkeypatch: pytest.MonkeyPatch, space_na: SearchSpace
) -> None:
    monkeypatch.setattr(_base, "_REGISTRY", dict(_base._REGISTRY))

    class FirstChoice(Strategy):
        """Always the first choice of every parameter (a deliberately dull strategy)."""

        name: ClassVar[str] = "first_choice"

        def build_sampler(self, space, options, *, seed, directions, n_trials):
            fixed = {p.name: p.choices[0] for p in space.params}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                base = optuna.samplers.RandomSampler(seed)
                return optuna.samplers.PartialFixedSampler(fixed, base)

    register_strategy(FirstChoice)
    assert "first_choice" in strategy_names()
    sampler = get_strategy("first_choice").make_sampler(
        space_na, seed=0, directions=MAX, options={}
    )
    study = run_ask_tell(space_na, sampler, MAX, 3)
    assert [t.params for t in study.trials] == [space_na.params_at(0)] * 3

    class Impostor(FirstChoice):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_strategy(Impostor)
    with pytest.raises(ValueError, match="lower case"):
        register_strategy(type("Bad", (FirstChoice,), {"name": "Bad-Name"}))


def test_tpe_passes_optuna_5_defaults_without_warnings(space_na: SearchSpace) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampler = get_strategy("tpe").make_sampler(space_na, seed=0, directions=MAX, options={})
    assert isinstance(sampler, optuna.samplers.TPESampler)
    reference = optuna.samplers.TPESampler(seed=0)
    attrs = ("_n_startup_trials", "_n_ei_candidates", "_multivariate", "_group", "_constant_liar")
    for attr in attrs:
        assert getattr(sampler, attr) == getattr(reference, attr), attr
    # Optuna 5: multivariate "auto" (None), constant liar on
    assert sampler._multivariate is None and sampler._constant_liar is True

    custom = get_strategy("tpe").make_sampler(
        space_na,
        seed=0,
        directions=MAX,
        options={"n_startup_trials": 3, "multivariate": True, "constant_liar": False},
    )
    assert custom._n_startup_trials == 3
    assert custom._multivariate is True and custom._constant_liar is False


def test_tpe_refuses_options_optuna_5_deprecates(space_na: SearchSpace) -> None:
    with pytest.raises(ConfigError) as err:
        get_strategy("tpe").make_sampler(
            space_na,
            seed=0,
            directions=MAX,
            options={"consider_endpoints": True, "n_ei_candidates": 0},
        )
    lines = str(err.value).splitlines()
    assert lines[0].startswith("search.strategy.setup.sampler_options.consider_endpoints: ")
    assert "deprecated in Optuna 5.0" in lines[0] and lines[0].endswith("got True")
    assert lines[1] == (
        "search.strategy.setup.sampler_options.n_ei_candidates: "
        "input should be greater than or equal to 1; got 0"
    )
    with pytest.raises(ConfigError, match="group = true needs multivariate"):
        get_strategy("tpe").parse_options({"group": True, "multivariate": False})


def test_genetic_population_defaults(space_na: SearchSpace) -> None:
    assert [genetic_population_size(n) for n in (None, 20, 100, 1000)] == [50, 10, 20, 50]
    assert reference_point_count(2, 3) == 4 and reference_point_count(4, 3) == 20

    def population(name: str, n_objectives: int, n_trials: int | None, **options) -> int:
        directions = ["minimize"] * n_objectives
        return get_strategy(name).make_sampler(
            space_na, seed=0, directions=directions, options=options, n_trials=n_trials
        ).population_size

    assert population("nsgaii", 2, 100) == 20
    assert population("nsgaii", 2, None) == 50
    assert population("nsgaii", 2, 100, population_size=8) == 8
    # NSGA-III: at least one individual per reference point (20 for 4 objectives)
    assert population("nsgaiii", 2, 20) == 10
    assert population("nsgaiii", 4, 20) == 20
    rule = "population_size: input should be greater than or equal to 2; got 1"
    with pytest.raises(ConfigError, match=rule):
        population("nsgaii", 2, 20, population_size=1)


def test_qmc_scrambles_by_default(space_na: SearchSpace) -> None:
    sampler = get_strategy("qmc").make_sampler(space_na, seed=0, directions=MAX, options={})
    assert sampler._scramble is True
    plain = get_strategy("qmc").make_sampler(
        space_na, seed=0, directions=MAX, options={"scramble": False, "qmc_type": "halton"}
    )
    assert plain._scramble is False and plain._qmc_type == "halton"
    rule = "qmc_type: input should be 'sobol' or 'halton'; got 'owen'"
    with pytest.raises(ConfigError, match=rule):
        get_strategy("qmc").parse_options({"qmc_type": "owen"})


def test_cmaes_explains_why_it_cannot_run(space_na: SearchSpace) -> None:
    with pytest.raises(SearchError) as err:
        get_strategy("cmaes").make_sampler(space_na, seed=0, directions=MAX, options={})
    msg = str(err.value)
    assert "categorical" in msg and "Use 'tpe' or 'gp'" in msg


def test_objective_count_and_directions_are_checked(space_na: SearchSpace) -> None:
    with pytest.raises(SearchError, match="directions must be one or more of"):
        get_strategy("random").make_sampler(space_na, seed=0, directions=["up"], options={})
    with pytest.raises(SearchError, match="directions must be one or more of"):
        get_strategy("random").make_sampler(space_na, seed=0, directions=[], options={})


def test_options_may_be_given_as_objects(space_na: SearchSpace) -> None:
    tpe = get_strategy("tpe")
    sampler = tpe.make_sampler(
        space_na, seed=0, directions=MAX, options=tpe.Options(n_startup_trials=4)
    )
    assert sampler._n_startup_trials == 4
    with pytest.raises(ConfigError, match="takes Options"):
        tpe.make_sampler(space_na, seed=0, directions=MAX, options=StrategyOptions())
