"""MASE's TOML shape <-> bitscout's typed shape.

MASE spells a few things in ways that do not map one-to-one onto typed fields:
per-layer configs sit one table deeper (``[passes.quantize.linear.config]``,
``[search.search_space.seed.linear.config]``), the search space's ``by`` sits under
``setup``, and runners are either tables (``[search.strategy.sw_runner.basic_evaluation]``)
or, in older files, a name with the options beside it at strategy level
(``sw_runner = "basic_evaluation"``, ``data_loader = ...``, ``num_samples = ...``).

:func:`from_toml` turns a parsed TOML document into the canonical dict the pydantic
models validate, and records for each moved place the TOML path it came from, so that
every error names the key the user actually wrote. :func:`to_toml_shape` goes back.

Keys MASE accepted that mean nothing here are dropped with the reason they are ignored;
the loader warns once for each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bitscout.config._problems import NOTHING, Problem, join_path, suggest
from pydantic_core import PydanticCustomError

from bitscout.config._rules import SPLIT_NAMES, _int_at_least, _one_of, quote

__all__ = [
    "SOFTWARE_RUNNERS",
    "HARDWARE_RUNNERS",
    "IGNORED_KEYS",
    "IGNORED_SETUP_KEYS",
    "Loc",
    "Reshaped",
    "from_toml",
    "to_toml_shape",
    "runner_problem",
    "add_runner_name",
]

SOFTWARE_RUNNERS = ("basic_evaluation", "basic_train")
HARDWARE_RUNNERS = (
    "average_bitwidth",
    "activation_bitwidth",
    "model_size",
    "flops",
    "bitops",
    "latency",
)

_LIGHTNING = "a PyTorch Lightning trainer setting; bitscout trains with its own loop"
_RUNTIME = "a MASE runtime setting with no meaning in bitscout"

IGNORED_KEYS: Mapping[str, str] = {
    # Top-level keys of MASE's CLI (chop/cli.py CLI_DEFAULTS) that bitscout does not use,
    # each with the reason a user sees in the warning.
    "config": "the config file is given on the command line",
    "to_debug": _RUNTIME,
    "log_level": _RUNTIME,
    "report_to": "bitscout writes its own logs and plots, not TensorBoard or W&B",
    "quant_config": "use a [passes.quantize] table instead",
    "training_optimizer": _LIGHTNING,
    "trainer_precision": _LIGHTNING,
    "weight_decay": _LIGHTNING,
    "max_steps": _LIGHTNING,
    "accumulate_grad_batches": _LIGHTNING,
    "log_every_n_steps": _LIGHTNING,
    "t_max": "a setting of MASE's learning-rate scheduler, which bitscout does not use",
    "eta_min": "a setting of MASE's learning-rate scheduler, which bitscout does not use",
    "num_workers": "bitscout keeps datasets in memory and uses no data-loader workers",
    "num_devices": "bitscout runs on one device; set accelerator to choose it",
    "num_nodes": "bitscout runs on one device; use --storage to share a search between machines",
    "strategy": "Lightning's distributed training strategy; the search strategy is [search.strategy]",
    "is_to_auto_requeue": _RUNTIME,
    "github_ci": _RUNTIME,
    "disable_dataset_cache": _RUNTIME,
    "target": "MASE's FPGA part for hardware generation; bitscout does not generate hardware",
    "num_targets": "a MASE hardware-generation setting; bitscout does not generate hardware",
    "is_pretrained": "a MASE option for pretrained language models",
    "max_token_len": "a MASE option for language models",
    "project_dir": "bitscout writes to the run folder given with --out",
    "resume_training": "a search resumes by itself when run again on the same run folder or storage",
    "profile": _RUNTIME,
    "no_warnings": _RUNTIME,
    "transform": "MASE's [transform] table; bitscout always transforms the traced graph",
}

# Keys of MASE's [search.strategy.setup] that bitscout has no use for, with the reason.
IGNORED_SETUP_KEYS: Mapping[str, str] = {
    "pkl_ckpt": "MASE resumes from a pickled study; bitscout resumes by itself from the run "
    "folder's study.journal or --storage (and never unpickles a file)",
    "save_every_n_trials": "bitscout stores every trial as it finishes",
    "model_parallel": _RUNTIME,
}

# MASE's quantize pass prints a table of what it changed when `report = true`.
_QUANTIZE_REPORT = "bitscout quantize always prints the node-by-node table"

Loc = tuple[str | int, ...]
"""A location in the canonical dict, as pydantic reports it."""

_SPACE_KEYS = ("name", "setup", "seed")
_SPACE_SETUP_KEYS = ("by",)
_STRATEGY_KEYS = ("name", "eval_mode", "sw_runner", "hw_runner", "setup", "metrics", "constraints")
_LEGACY_RUNNER_KEYS = ("data_loader", "num_samples")
# The rules of basic_evaluation's options of the same names.
_LEGACY_RUNNER_RULES = {"data_loader": _one_of(SPLIT_NAMES), "num_samples": _int_at_least(1)}
_KINDS = {"sw": ("software", SOFTWARE_RUNNERS), "hw": ("hardware", HARDWARE_RUNNERS)}


@dataclass
class Reshaped:
    """The result of :func:`from_toml`.

    Attributes:
        data: The canonical dict for :class:`bitscout.config.Config`.
        paths: Canonical location -> the TOML path it came from, for the places that
            moved; everything else keeps its own name.
        problems: What was wrong with the TOML's structure.
        ignored: ``(key, reason)`` for each MASE key dropped.
    """

    data: dict[str, Any] = field(default_factory=dict)
    paths: dict[Loc, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)

    def unknown(self, path: str, key: str, valid: Iterable[str]) -> None:
        self.problems.append(Problem(join_path(path, key), "unknown key", hint=suggest(key, valid)))


# Runners registered at run time (bitscout.metrics.register_runner, e.g. in a plugin):
# kind -> names. The config cannot import the metrics package (it sits below it), so the
# registry tells the config of each new name instead.
_ADDED_RUNNERS: dict[str, set[str]] = {"sw": set(), "hw": set()}


def add_runner_name(kind: str, name: str) -> None:
    """Accept ``name`` as a runner of ``kind`` (``"sw"`` or ``"hw"``) in configs."""
    _ADDED_RUNNERS[kind].add(name)


def _known_runners(kind: str) -> tuple[str, tuple[str, ...]]:
    word, builtin = _KINDS[kind]
    return word, (*builtin, *sorted(_ADDED_RUNNERS[kind] - set(builtin)))


def runner_problem(kind: str, name: str, path: str, *, as_value: bool) -> Problem | None:
    """The problem with a runner name under ``<kind>_runner``, or None if it is fine.

    Args:
        kind: ``"sw"`` or ``"hw"``.
        name: The runner name given.
        path: TOML path of the runner table (``search.strategy.sw_runner``).
        as_value: True for the older form ``sw_runner = "name"``: the name is a value.
    """
    kind_word, known = _known_runners(kind)
    if name in known:
        return None
    other = "hw" if kind == "sw" else "sw"
    other_word, other_known = _known_runners(other)
    if name in other_known:
        where = path if as_value else join_path(path, name)
        return Problem(
            where,
            f"{name!r} is a {other_word} runner",
            hint=f"put it under search.strategy.{other}_runner",
        )
    # The rule lists bitscout's own runners; a name close to a registered one is suggested.
    rule = f"unknown {kind_word} runner (known: {quote(_KINDS[kind][1])})"
    hint = suggest(name, known)
    if not hint.startswith("did you mean"):
        added = sorted(_ADDED_RUNNERS[kind])
        hint = (
            f"registered by plugins: {quote(added)}" if added else
            "a runner of your own is known once the module that registers it is named in "
            "plugins = [\"package.module\"]"
        )
    if as_value:
        return Problem(path, rule, name, hint)
    return Problem(join_path(path, name), rule, hint=hint)


def from_toml(raw: Mapping[str, Any]) -> Reshaped:
    """Turn a parsed MASE/bitscout TOML document into the canonical dict.

    Args:
        raw: The document as ``tomllib`` returns it.

    Returns:
        The canonical data, where each moved key came from, the structural problems
        found and the MASE keys dropped. Problems of value (a wrong type, an unknown key
        in a table that did not move) are left to the pydantic models.
    """
    out = Reshaped()
    for key, value in raw.items():
        if key in IGNORED_KEYS:
            out.ignored.append((key, IGNORED_KEYS[key]))
        elif key == "source":
            # `source` is filled in by the loader (the file a config came from).
            out.problems.append(Problem("source", "unknown key", hint="it is set by bitscout itself"))
        elif key == "passes" and isinstance(value, Mapping):
            out.data["passes"] = _passes(value, out)
        elif key == "search" and isinstance(value, Mapping):
            out.data["search"] = _search(value, out)
        else:
            out.data[key] = value
    return out


def _layer_tables(table: Mapping[str, Any], path: str, loc: Loc, out: Reshaped) -> dict[str, Any]:
    """``{key: {"config": {...}}}`` -> ``{key: {...}}``, recording each key's TOML path."""
    result: dict[str, Any] = {}
    for key, value in table.items():
        where = join_path(path, key)
        if not isinstance(value, Mapping):
            out.problems.append(
                Problem(where, f"must be a table holding a 'config' table ([{join_path(where, 'config')}])", value)
            )
            continue
        if "config" not in value:
            # MASE's LLM configs put the fields one table higher: say so once, not per field.
            out.problems.append(
                Problem(
                    where,
                    f"must hold its fields in a 'config' table ([{join_path(where, 'config')}])",
                    hint=f"found {quote(list(value))} directly under it" if value else "",
                )
            )
            continue
        for extra in [name for name in value if name != "config"]:
            out.unknown(where, extra, ["config"])
        result[key] = value["config"]
        out.paths[(*loc, key)] = join_path(where, "config")
    return result


def _passes(passes: Mapping[str, Any], out: Reshaped) -> dict[str, Any]:
    data = dict(passes)
    quantize = passes.get("quantize")
    if isinstance(quantize, Mapping):
        if "report" in quantize:
            out.ignored.append(("passes.quantize.report", _QUANTIZE_REPORT))
        entries = {key: value for key, value in quantize.items() if key not in ("by", "report")}
        data["quantize"] = {
            **({"by": quantize["by"]} if "by" in quantize else {}),
            "entries": _layer_tables(entries, "passes.quantize", ("passes", "quantize", "entries"), out),
        }
    return data


def _search(search: Mapping[str, Any], out: Reshaped) -> dict[str, Any]:
    data = dict(search)
    if isinstance(search.get("search_space"), Mapping):
        data["search_space"] = _space(search["search_space"], out)
    if isinstance(search.get("strategy"), Mapping):
        data["strategy"] = _strategy(search["strategy"], out)
    return data


def _space(space: Mapping[str, Any], out: Reshaped) -> dict[str, Any]:
    path, loc = "search.search_space", ("search", "search_space")
    data: dict[str, Any] = {}
    for key in [name for name in space if name not in _SPACE_KEYS]:
        out.unknown(path, key, _SPACE_KEYS)
    if "name" in space:
        data["name"] = space["name"]
    setup = space.get("setup")
    if isinstance(setup, Mapping):
        for key in [name for name in setup if name not in _SPACE_SETUP_KEYS]:
            out.unknown(f"{path}.setup", key, _SPACE_SETUP_KEYS)
        if "by" in setup:
            data["by"] = setup["by"]
    elif setup is not None:
        out.problems.append(Problem(f"{path}.setup", "must be a table", setup))
    out.paths[(*loc, "by")] = f"{path}.setup.by"
    seed = space.get("seed", NOTHING)
    if isinstance(seed, Mapping):
        data["seed"] = _layer_tables(seed, f"{path}.seed", (*loc, "seed"), out)
    elif seed is not NOTHING:
        data["seed"] = seed  # not a table: the model says so
    return data


def _strategy(strategy: Mapping[str, Any], out: Reshaped) -> dict[str, Any]:
    path, loc = "search.strategy", ("search", "strategy")
    data: dict[str, Any] = {}
    for key in [name for name in strategy if name not in _STRATEGY_KEYS + _LEGACY_RUNNER_KEYS]:
        out.unknown(path, key, _STRATEGY_KEYS + _LEGACY_RUNNER_KEYS)
    for key in ("name", "eval_mode", "setup", "metrics", "constraints"):
        if key in strategy:
            data[key] = strategy[key]
    if isinstance(data.get("setup"), Mapping):
        setup = dict(data["setup"])
        for key in [name for name in setup if name in IGNORED_SETUP_KEYS]:
            out.ignored.append((f"{path}.setup.{key}", IGNORED_SETUP_KEYS[key]))
            del setup[key]
        data["setup"] = setup
    legacy_options = {key: strategy[key] for key in _LEGACY_RUNNER_KEYS if key in strategy}
    legacy_sw = False
    for kind in ("sw", "hw"):
        key = f"{kind}_runner"
        if key not in strategy:
            continue
        runners, legacy = _runners(kind, strategy[key], f"{path}.{key}", out)
        if legacy and kind == "sw":
            legacy_sw = True
            runners = {name: dict(legacy_options) for name in runners}
        data[f"{kind}_runners"] = runners
        out.paths[(*loc, f"{kind}_runners")] = f"{path}.{key}"
    if legacy_sw:
        # Judged here, where the TOML path is known: a runner judging them later would
        # name its own table, which the file does not have.
        for key, value in legacy_options.items():
            try:
                _LEGACY_RUNNER_RULES[key](value)
            except PydanticCustomError as exc:
                out.problems.append(Problem(join_path(path, key), exc.message(), value))
    else:
        for key, value in legacy_options.items():
            out.problems.append(
                Problem(
                    join_path(path, key),
                    'is only read with the older form sw_runner = "<name>"',
                    value,
                    f"put it in the runner's table, e.g. [{path}.sw_runner.basic_evaluation]",
                )
            )
    return data


def _runners(kind: str, value: Any, path: str, out: Reshaped) -> tuple[dict[str, Any], bool]:
    """Runner tables, or the older runner name(s); returns (runners, was_the_older_form)."""
    if isinstance(value, str) or (
        isinstance(value, list) and value and all(isinstance(item, str) for item in value)
    ):
        names = [value] if isinstance(value, str) else value
        runners: dict[str, Any] = {}
        for name in names:
            problem = runner_problem(kind, name, path, as_value=True)
            if problem is not None:
                out.problems.append(problem)
            else:
                runners[name] = {}
        return runners, True
    if isinstance(value, Mapping):
        runners = {}
        for name, options in value.items():
            problem = runner_problem(kind, name, path, as_value=False)
            if problem is not None:
                out.problems.append(problem)
            elif not isinstance(options, Mapping):
                out.problems.append(
                    Problem(join_path(path, name), "must be a table of the runner's options", options)
                )
            else:
                runners[name] = dict(options)
        return runners, False
    kind_word, known = _KINDS[kind]
    out.problems.append(
        Problem(
            path,
            f"must be a table of {kind_word} runners ([{path}.{known[0]}]) or a runner name",
            value,
        )
    )
    return {}, False


def _plain(value: Any) -> Any:
    """Canonical values -> TOML values (paths to strings, tuples to lists, no None)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def to_toml_shape(data: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical dict (``Config.model_dump()``) back in MASE's table shape.

    Empty optional tables are left out; runner tables are always written, even empty,
    because their presence is what selects a runner.
    """
    doc = {key: value for key, value in data.items() if key not in ("passes", "search")}
    for key in ("model_options", "plugins", "trace_into"):  # empty: the same as absent
        if not doc.get(key):
            doc.pop(key, None)
    doc = _plain(doc)
    quantize = (data.get("passes") or {}).get("quantize")
    if quantize is not None:
        doc["passes"] = {
            "quantize": {
                "by": quantize["by"],
                **{key: {"config": _plain(cfg)} for key, cfg in quantize["entries"].items()},
            }
        }
    search = data.get("search")
    if search is not None:
        space, strategy = search["search_space"], search["strategy"]
        setup = _plain(strategy["setup"])
        if not setup.get("sampler_options"):
            setup.pop("sampler_options", None)
        strategy_doc: dict[str, Any] = {"name": strategy["name"], "eval_mode": strategy["eval_mode"]}
        for kind in ("sw", "hw"):
            if strategy[f"{kind}_runners"]:
                strategy_doc[f"{kind}_runner"] = _plain(strategy[f"{kind}_runners"])
        strategy_doc["setup"] = setup
        if strategy["metrics"]:
            strategy_doc["metrics"] = _plain(strategy["metrics"])
        if strategy["constraints"]:
            strategy_doc["constraints"] = _plain(strategy["constraints"])
        doc["search"] = {
            "search_space": {
                "name": space["name"],
                "setup": {"by": space["by"]},
                "seed": {key: {"config": _plain(cfg)} for key, cfg in space["seed"].items()},
            },
            "strategy": strategy_doc,
        }
    return doc
