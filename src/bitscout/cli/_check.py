"""``bitscout check CONFIG``: validate a config and print it resolved.

Prints the resolved config as TOML (what a run would use, overrides applied, ignored
MASE keys dropped) followed by a one-line summary written as a TOML comment, so the
whole output is itself a valid config. Besides the schema, the options of every runner
and of the strategy are validated by the runner and strategy themselves (a
``dataloader`` typo in ``[search.strategy.sw_runner.basic_evaluation]`` is caught here,
not at the first trial), and so are the model and data set names, the model's options,
every ``[passes.quantize]`` entry and the metrics ``[search.strategy.constraints]`` bounds. Exit status 0 when valid; an invalid config is a
:class:`bitscout.errors.ConfigError`, printed by the dispatcher with status 2.
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from bitscout.cli._common import add_config_argument, add_override_options, config_from_args
from bitscout.config import Config, SearchSpaceConfig, StrategyConfig
from bitscout.config._plugins import import_object
from bitscout.config._problems import toml_key
from bitscout.data import dataset_path_problem, dataset_problem, get_dataset_source
from bitscout.errors import BitscoutError, ConfigError, ModelError
from bitscout.models import get_model_builder
from bitscout.quant import TENSOR_NAMES, fields_of_formats, parse_layer_config

__all__ = ["register", "run", "config_problems", "raise_config_problems", "seed_problems"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``check`` subcommand."""
    parser = subparsers.add_parser(
        "check",
        help="validate a config file and print it resolved",
        description=(
            "Validate a TOML config (MASE's search format or bitscout's) and print the "
            "resolved config with a one-line summary. Exit status 0: valid; 2: invalid."
        ),
    )
    add_config_argument(parser)
    add_override_options(parser, search=True)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate, print the resolved TOML and the summary; 0 when valid."""
    config = config_from_args(args, check_load=False)
    raise_config_problems(config)
    _trace_model(config)
    print(config.to_toml(), end="")
    print(f"\n# ok: {config.summary()}")
    return 0


def raise_config_problems(config: Config) -> None:
    """Raise every problem of :func:`config_problems` at once, as ``check`` reports them.

    Raises:
        ConfigError: One line per problem.
    """
    problems = config_problems(config)
    if problems:
        label = config.source if config.source is not None else "the config"
        raise ConfigError(f"problems in {label}:\n  " + "\n  ".join(problems))


def _trace_model(config: Config) -> None:
    """Build and trace the model on its data, so that check warns of parameters left in
    float (:class:`bitscout.graph.TraceCoverageWarning`) and fails on an untraceable model.

    A registered data set that is not on this machine (JSC without its file) is not an
    error of the config: the model is then not traced here.

    Raises:
        BitscoutError: The data file or factory cannot be read, the model cannot be
            built, or it cannot be traced.
    """
    from bitscout.data import dataset_kind, load_dataset
    from bitscout.errors import DataError
    from bitscout.experiment import build_fresh_model
    from bitscout.graph import trace, traceable_view

    try:
        dataset = load_dataset(
            config.dataset, path=config.dataset_path, seed=config.seed, label_column=config.label_column
        )
    except DataError:
        if dataset_kind(config.dataset) == "registry":
            return
        raise
    model = traceable_view(build_fresh_model(config, dataset.info).eval(), config.trace_into)
    x = next(split.x for split in (dataset.val, dataset.train, dataset.test) if len(split))
    trace(model, x[:2])


def config_problems(config: Config) -> list[str]:
    """What the schema cannot see: names and options judged by their registries.

    The model and data set names (and the model's options), each
    ``[passes.quantize]`` entry, and the options of every runner and of the strategy,
    checked without loading any data or building any model.

    Returns:
        One line per problem, each naming its TOML path; empty when the config is valid.
    """
    problems: list[str] = []
    try:
        if ":" in config.model:  # a user factory: it must import (its call needs data)
            import_object(config.model, what="model", error=ModelError)
        else:
            get_model_builder(config.model).parse_options(config.model_options)
    except BitscoutError as exc:
        problems.append(f"model: {exc}")
    dataset = dataset_problem(config.dataset, label_column=config.label_column)
    if dataset is not None:
        problems.append(f"dataset: {dataset}")
    else:
        try:
            path_problem = dataset_path_problem(get_dataset_source(config.dataset), config.dataset_path)
        except BitscoutError:  # a data file or a factory: no registered source to ask
            path_problem = None
        if path_problem is not None:
            problems.append(f"dataset_path: {path_problem}")
    quantize = config.passes.quantize
    if quantize is not None:
        for key, entry in quantize.entries.items():
            # A relu has only an input; every other layer may have all three tensors.
            tensors = ("data_in",) if quantize.by == "type" and key == "relu" else TENSOR_NAMES
            where = f"passes.quantize.{toml_key(key)}.config"
            fields = {field: (value,) for field, value in entry.items()}
            op = key if quantize.by == "type" and key != "default" else None
            problems += _one_seed_problems(fields, where, tensors, op=op)
    if config.search is not None:
        problems += seed_problems(config.search.search_space)
        problems += _search_problems(config.search.strategy)
    return problems


_SEED_PATH = "search.search_space.seed"

# Above this many combinations of one seed's choices, each choice is tried once (with the
# first choice of every other field) instead of every combination: a space the search
# would build anyway, but `check` stays instant.
_MAX_CHECKED_COMBINATIONS = 4096


def seed_problems(space: SearchSpaceConfig) -> list[str]:
    """Every field of every seed judged by its format, without the model.

    A seed that ``setup.by`` will not use (MASE files carry a type seed and a name seed
    side by side) is judged too: a width of 0 in it is still a mistake. Each seed is
    parsed for the tensors its fields name (an input-only seed is not asked for weights;
    whether a layer needs more is known only with the model, when the space is built).

    Returns:
        One line per distinct problem, each naming the seed's TOML path and the field.
    """
    problems: list[str] = []
    for key, fields in space.seed.items():
        where = f"{_SEED_PATH}.{toml_key(key)}.config"
        named = tuple(t for t in TENSOR_NAMES if any(str(f).startswith(f"{t}_") for f in fields))
        tensors = ("data_in",) if space.by == "type" and key == "relu" else named or ("data_in",)
        op = key if space.by == "type" and key != "default" else None
        for problem in _one_seed_problems(dict(fields), where, tensors, op=op):
            if problem not in problems:
                problems.append(problem)
    return problems


def _one_seed_problems(
    fields: dict[str, tuple[Any, ...]], where: str, tensors: tuple[str, ...], *, op: str | None = None
) -> list[str]:
    """Problems of one seed (or quantize entry), all of them, each once.

    Each tensor is judged on its own, so that a bad input width does not hide a bad
    weight width; fields of no tensor (unknown ones) are judged with the first.
    """
    problems: list[str] = []
    for index, tensor in enumerate(tensors):
        own = {
            field: choices
            for field, choices in fields.items()
            if field == "name"
            or str(field).startswith(f"{tensor}_")
            or (index == 0 and not any(str(field).startswith(f"{t}_") for t in tensors))
        }
        for problem in _tensor_problems(own, where, (tensor,), op=op):
            if problem not in problems:
                problems.append(problem)
    return problems


def _tensor_problems(
    fields: dict[str, tuple[Any, ...]], where: str, tensors: tuple[str, ...], *, op: str | None = None
) -> Iterator[str]:
    """A parse stops at its first problem, so each bad choice found is taken out (an
    unknown field: the whole field) and the fields parsed again, until they parse or a
    field has no choice left to try."""
    shared = fields_of_formats(fields.get("name", ()))
    for _ in range(sum(len(choices) for choices in fields.values()) + 1):
        failure = None
        for raw in _seed_configs(fields):
            try:
                parse_layer_config(raw, where=where, tensors=tensors, op=op, shared=shared)
            except BitscoutError as exc:
                failure = (str(exc), raw)
                break
        if failure is None:
            return
        message, raw = failure
        yield message
        field = _FAILED_FIELD.search(message)
        name = field[1] if field is not None else None
        if name not in raw:  # a missing field, or a problem no one choice causes
            return
        if "is not a field of format" in message:
            del fields[name]
            continue
        left = tuple(value for value in fields[name] if not _same(value, raw[name]))
        if not left:
            return
        fields[name] = left


_FAILED_FIELD = re.compile(r"field '([^']+)'")


def _same(a: Any, b: Any) -> bool:
    # 1, 1.0 and True are equal in Python but distinct choices here.
    return type(a) is type(b) and a == b


def _seed_configs(fields: Mapping[str, tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    """The flat configs a seed's choices give: all of them, or each choice once."""
    names = list(fields)
    if math.prod(len(fields[name]) for name in names) <= _MAX_CHECKED_COMBINATIONS:
        for values in itertools.product(*(fields[name] for name in names)):
            yield dict(zip(names, values))
        return
    first = {name: fields[name][0] for name in names}
    yield first
    for name in names:
        for value in fields[name][1:]:
            yield {**first, name: value}


def _search_problems(strategy_cfg: StrategyConfig) -> list[str]:
    from bitscout.metrics import constraint_problems, validate_runners
    from bitscout.strategies import get_strategy

    problems: list[str] = []
    try:
        validate_runners(strategy_cfg)
    except ConfigError as exc:
        problems += str(exc).splitlines()
    problems += constraint_problems(strategy_cfg)
    try:
        get_strategy(strategy_cfg.strategy_name).parse_options(strategy_cfg.setup.sampler_options)
    except ConfigError as exc:
        problems += str(exc).splitlines()
    return problems
