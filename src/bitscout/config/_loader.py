"""Reading a TOML config into a :class:`Config`, with errors written for people.

Every problem found in a file is collected and reported in one
:class:`bitscout.errors.ConfigError`, one line per problem:
``<file>: <toml.dotted.path>: <rule>; got <value>``. pydantic's own errors never
reach the user: their locations are turned back into the TOML paths the user wrote.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from bitscout.config._mase import Loc, from_toml
from bitscout.config._plugins import import_plugins
from bitscout.config._problems import NOTHING, Problem, join_path, render_problems, suggest
from bitscout.config._rules import RULE_AT_ERROR, RULE_ERROR
from bitscout.config.schema import Config
from bitscout.errors import ConfigError

__all__ = [
    "BitscoutConfigWarning",
    "ConfigOverrides",
    "load_config",
    "parse_config",
    "apply_overrides",
]

_NO_FILE = "<config>"
_TABLE_ERRORS = {"dict_type", "model_type", "model_attributes_type", "mapping_type"}
_TOML_POSITION = re.compile(r"^(?P<reason>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$")


class BitscoutConfigWarning(UserWarning):
    """A config key that MASE accepted but that means nothing in bitscout (it is ignored)."""


@dataclass(frozen=True)
class ConfigOverrides:
    """Command-line options that override the config file; ``None`` keeps the file's value.

    Attributes:
        load: ``--load``: checkpoint to start from (``load_name``).
        load_type: ``--load-type``: its kind (``pt``, ``pl``, ``bitscout``).
        out: ``--out``: run folder.
        seed: ``--seed``: the top-level seed and the sampler's seed.
        accelerator: ``--accelerator``: ``cpu``, ``cuda`` (or ``gpu``), ``auto``.
        n_trials: ``--n-trials``: ``search.strategy.setup.n_trials``.
        sampler: ``--sampler``: the strategy to use, an Optuna sampler (``tpe``) or any
            registered strategy (``brute_force``); sets ``search.strategy.name`` to
            ``"optuna"`` and ``setup.sampler`` to it.
        storage: ``--storage``: ``setup.storage``.
        study_name: ``--study-name``: ``setup.study_name``.
        workers: ``--workers``: ``setup.workers``.
    """

    load: Path | str | None = None
    load_type: str | None = None
    out: Path | str | None = None
    seed: int | None = None
    accelerator: str | None = None
    n_trials: int | None = None
    sampler: str | None = None
    storage: str | None = None
    study_name: str | None = None
    workers: int | None = None


_SETUP: Loc = ("search", "strategy", "setup")
# Override field -> (its command-line option, the places in the canonical config it sets).
_OVERRIDE_TARGETS: dict[str, tuple[str, tuple[Loc, ...]]] = {
    "load": ("--load", (("load_name",),)),
    "load_type": ("--load-type", (("load_type",),)),
    "out": ("--out", (("out",),)),
    "seed": ("--seed", (("seed",), (*_SETUP, "seed"))),
    "accelerator": ("--accelerator", (("accelerator",),)),
    "n_trials": ("--n-trials", ((*_SETUP, "n_trials"),)),
    "sampler": ("--sampler", ((*_SETUP, "sampler"),)),
    "storage": ("--storage", ((*_SETUP, "storage"),)),
    "study_name": ("--study-name", ((*_SETUP, "study_name"),)),
    "workers": ("--workers", ((*_SETUP, "workers"),)),
}


def load_config(path: str | Path, overrides: ConfigOverrides | None = None) -> Config:
    """Read, validate and resolve a TOML config file.

    Args:
        path: The TOML file (MASE's search config format, or bitscout's superset).
        overrides: Command-line values applied after the file is validated.

    Returns:
        The validated config, ``source`` set to ``path``.

    Raises:
        ConfigError: The file is missing, unreadable or malformed TOML, or has any
            invalid value; the message lists every problem with its TOML path.

    Warns:
        BitscoutConfigWarning: Once for each MASE key that bitscout ignores.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        where = "" if path.is_absolute() else f" (looked for {path.absolute()})"
        raise ConfigError(f"config file not found: {path}{where}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a TOML config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (bad byte at offset {exc.start}); TOML files must be UTF-8"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_describe_toml_error(path, str(exc), text)) from None
    # Warnings point at the caller of load_config: load_config -> _parse -> warn.
    return _parse(raw, source=path, overrides=overrides, stacklevel=3)


def parse_config(
    raw: Mapping[str, Any],
    *,
    source: str | Path | None = None,
    overrides: ConfigOverrides | None = None,
) -> Config:
    """Validate an already parsed TOML document (MASE's table shape).

    Args:
        raw: The document, e.g. from ``tomllib.loads``.
        source: Where it came from, for messages and ``Config.source``.
        overrides: Command-line values applied after validation.

    Returns:
        The validated config.

    Raises:
        ConfigError: Every problem found, one per line.

    Warns:
        BitscoutConfigWarning: Once for each MASE key that bitscout ignores.
    """
    return _parse(raw, source=source, overrides=overrides, stacklevel=3)


def _parse(
    raw: Mapping[str, Any],
    *,
    source: str | Path | None,
    overrides: ConfigOverrides | None,
    stacklevel: int,
) -> Config:
    label = str(source) if source is not None else _NO_FILE
    plugins = raw.get("plugins")
    if isinstance(plugins, list) and all(isinstance(item, str) for item in plugins):
        # Before the runner tables are read: a plugin may register the runners they name.
        # A plugin that fails is reported, with its TOML path, by the schema's own rule.
        with contextlib.suppress(ConfigError):
            import_plugins(plugins)
    reshaped = from_toml(raw)
    for key, reason in reshaped.ignored:
        warnings.warn(BitscoutConfigWarning(f"{label}: {key}: ignored ({reason})"), stacklevel=stacklevel)
    data = dict(reshaped.data)
    if source is not None:
        data["source"] = Path(source)
    problems = list(reshaped.problems)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += _convert(exc, reshaped.paths)
    if problems or config is None:
        raise ConfigError(render_problems(_ordered(problems), label))
    if overrides is not None:
        config = apply_overrides(config, overrides)
    return config


def apply_overrides(config: Config, overrides: ConfigOverrides) -> Config:
    """A new config with the command-line values set.

    Each value is judged by the same rule as in a file, and a problem names the option
    (``--n-trials: must be an integer >= 1; got 0``).

    Raises:
        ConfigError: An override is invalid, or needs a ``[search]`` section the config
            does not have.
    """
    data = config.model_dump()
    paths: dict[Loc, str] = {}
    problems: list[Problem] = []
    for item in fields(overrides):
        value = getattr(overrides, item.name)
        if value is None:
            continue
        option, targets = _OVERRIDE_TARGETS[item.name]
        assignments = [(loc, value) for loc in targets]
        if item.name == "sampler":
            # Choosing a sampler on the command line chooses the strategy itself.
            assignments.append((("search", "strategy", "name"), "optuna"))
        for loc, new in assignments:
            if loc[0] == "search" and data["search"] is None:
                if item.name != "seed":  # --seed still sets the top-level seed
                    problems.append(Problem(option, "needs a [search] section, and the config has none"))
                continue
            _set(data, loc, new)
            paths[loc] = option
    if not problems:
        try:
            return Config.model_validate(data)
        except ValidationError as exc:
            problems += _convert(exc, paths)
    label = str(config.source) if config.source is not None else _NO_FILE
    raise ConfigError(render_problems(_ordered(problems), label))


def _set(data: dict[str, Any], loc: Loc, value: Any) -> None:
    for key in loc[:-1]:
        data = data[key]
    data[loc[-1]] = value


def _ordered(problems: Sequence[Problem]) -> list[Problem]:
    """Command-line problems first, then by TOML path; each problem once."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda problem: (not problem.from_command_line, problem.path))


_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*(?P<name>[^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_LINE = re.compile(r"^\s*(?P<key>[^=#\[][^=]*?)\s*=")


def _duplicate_key(text: str, line: int) -> str | None:
    """tomllib says "Cannot overwrite a value" without the key: find it in the line.

    Returns:
        ``key 'a.b' (in table [x]) is set twice`` with the line it was first set on,
        or None when the line does not read as ``key = value``.
    """
    lines = text.splitlines()
    if not 1 <= line <= len(lines):
        return None
    match = _KEY_LINE.match(lines[line - 1])
    if match is None:
        return None
    key = match["key"].strip()
    table, first = "", None
    for number, content in enumerate(lines[: line - 1], start=1):
        header = _TABLE_HEADER.match(content)
        if header is not None:
            table, first = header["name"], None
            continue
        earlier = _KEY_LINE.match(content)
        if earlier is not None and earlier["key"].strip() == key and first is None:
            first = number
    where = f" in table [{table}]" if table else ""
    before = f", first on line {first}" if first is not None else ""
    return f"key {key!r}{where} is set twice{before}; keep one of them"


def _describe_toml_error(path: Path, message: str, text: str = "") -> str:
    match = _TOML_POSITION.match(message)
    if match is None:
        return f"{path}: malformed TOML: {message}"
    reason = match["reason"]
    if match["line"] is None:
        return f"{path}: at the end of the file: malformed TOML: {reason}"
    if reason == "Cannot overwrite a value":
        duplicate = _duplicate_key(text, int(match["line"]))
        if duplicate is not None:
            return f"{path}: line {match['line']}: malformed TOML: {duplicate}"
    declared = re.match(r"^Cannot declare \((?P<keys>.*)\) twice$", reason)
    if declared is not None:
        table = ".".join(part.strip().strip("'\"") for part in declared["keys"].split(",") if part.strip())
        return (
            f"{path}: line {match['line']}: malformed TOML: table [{table}] is declared twice; "
            "merge the two tables into one"
        )
    return f"{path}: line {match['line']}, column {match['col']}: malformed TOML: {reason}"


def _toml_path(loc: Loc, paths: Mapping[Loc, str]) -> str:
    """The TOML path (or option) of a canonical location: the longest recorded prefix wins."""
    for size in range(len(loc), 0, -1):
        if loc[:size] in paths:
            return join_path(paths[loc[:size]], *loc[size:])
    return join_path("", *loc)


def _convert(exc: ValidationError, paths: Mapping[Loc, str]) -> list[Problem]:
    problems = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = _toml_path(loc, paths)
        kind, value = error["type"], error.get("input", NOTHING)
        if kind == RULE_ERROR:
            problems.append(Problem(path, error["msg"], value))
        elif kind == RULE_AT_ERROR:
            at = error.get("ctx", {})
            problems.append(Problem(join_path(path, *at.get("at", ())), error["msg"], at.get("value", value)))
        elif kind == "missing":
            problems.append(Problem(path, "is required"))
        elif kind == "extra_forbidden":
            problems.append(Problem(path, "unknown key", hint=suggest(str(loc[-1]), _valid_keys(loc[:-1]))))
        elif kind in _TABLE_ERRORS:
            problems.append(Problem(path, "must be a table", value))
        else:  # not expected with the rule types; still worded, never a traceback
            message = error["msg"]
            problems.append(Problem(path, message[:1].lower() + message[1:], value))
    return problems


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, UnionType):
        members = [arg for arg in get_args(annotation) if arg is not NoneType]
        if len(members) == 1:
            return members[0]
    return annotation


def _valid_keys(loc: Loc) -> list[str]:
    """The keys the table at a canonical location accepts (for "did you mean")."""
    annotation: Any = Config
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part not in annotation.model_fields:
                return []
            annotation = annotation.model_fields[part].annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        else:
            return []
    annotation = _unwrap(annotation)
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return []
    return [name for name in annotation.model_fields if not (annotation is Config and name == "source")]
