"""One problem found in a config, and how it is worded for a person.

Every problem reads ``<file>: <toml.dotted.path>: <rule>; got <value>`` (or, for a
command-line option, ``--n-trials: <rule>; got <value>``), optionally followed by a hint
such as ``did you mean 'n_trials'?``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from bitscout.config._rules import RULE_AT_ERROR, quote
from bitscout.errors import did_you_mean

__all__ = [
    "Problem",
    "NOTHING",
    "toml_key",
    "join_path",
    "suggest",
    "render_problems",
    "describe_validation_error",
]

NOTHING: Any = object()
"""Marks a problem with no value to show (a missing key, an unknown key)."""

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_MAX_VALUE_CHARS = 120


def toml_key(key: Any) -> str:
    """A key as it is written in a TOML dotted path (quoted when it is not bare)."""
    if isinstance(key, int):
        return f"[{key}]"
    key = str(key)
    return key if _BARE_KEY.match(key) else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def join_path(base: str, *keys: Any) -> str:
    """Append keys to a dotted TOML path: ``join_path("search", "strategy")``."""
    path = base
    for key in keys:
        part = toml_key(key)
        path = f"{path}{part}" if part.startswith("[") or not path else f"{path}.{part}"
    return path


def suggest(key: str, valid: Iterable[str]) -> str:
    """A hint for an unknown key: the nearest valid key, or the valid keys."""
    valid = sorted(set(valid))
    if not valid:
        return "this table takes no keys"
    return did_you_mean(key, valid) or f"valid keys here: {quote(valid)}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config.

    Attributes:
        path: Dotted TOML path (``search.strategy.setup.n_trials``) or a command-line
            option (``--n-trials``).
        rule: What the value must be, or what is wrong (``must be an integer >= 1``).
        value: The value received, or ``NOTHING`` when there is none to show.
        hint: What to do, e.g. ``did you mean 'n_trials'?``.
    """

    path: str
    rule: str
    value: Any = field(default=NOTHING, compare=False)
    hint: str = ""

    @property
    def from_command_line(self) -> bool:
        return self.path.startswith("--")

    def render(self, label: str) -> str:
        """The problem as one line; ``label`` names the file it came from."""
        text = f"{self.path}: {self.rule}"
        if self.value is not NOTHING:
            text += f"; got {_show(self.value)}"
        if self.hint:
            text += f"; {self.hint}"
        return text if self.from_command_line else f"{label}: {text}"


def render_problems(problems: Sequence[Problem], label: str) -> str:
    """The message of the one ConfigError that reports every problem."""
    lines = [problem.render(label) for problem in problems]
    if len(lines) == 1:
        return lines[0]
    where = (
        "the command-line options"
        if all(problem.from_command_line for problem in problems)
        else label
    )
    return f"{len(lines)} problems in {where}:\n" + "\n".join(f"  {line}" for line in lines)


def _rule(error: Any) -> str:
    """A pydantic error's rule in bitscout's words (``must be an integer >= 1``)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    bounds = {
        "greater_than": ("gt", ">"),
        "greater_than_equal": ("ge", ">="),
        "less_than": ("lt", "<"),
        "less_than_equal": ("le", "<="),
    }
    if kind in bounds:
        key, sign = bounds[kind]
        bound = ctx[key]
        return f"must be {sign} {bound:g}" if isinstance(bound, float) else f"must be {sign} {bound}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be an integer"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "string_type":
        return "must be a string"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "missing":
        return "is required"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def describe_validation_error(
    exc: pydantic.ValidationError, where: str, *, owner: str, fields: Sequence[str]
) -> list[str]:
    """Turn the errors of a pydantic options model into lines a person can act on.

    Every options table validated outside the config schema (a runner's, a model's)
    is reported in the config's own shape, ``<where>.<key>: <rule>; got <value>``,
    and an unknown key lists what the table takes and the nearest valid key.

    Args:
        exc: The error raised by ``Options.model_validate``.
        where: The dotted path of the table (``search.strategy.sw_runner.basic_evaluation``).
        owner: Who takes the options, for unknown keys (``"this runner"``, ``"model 'mlp'"``).
        fields: The keys the table takes.

    Returns:
        One line per problem.
    """
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        path = join_path(where, *loc)
        if error["type"] == RULE_AT_ERROR:
            # A rule about one value inside the validated table: name that value's path.
            at = error.get("ctx") or {}
            lines.append(f"{join_path(path, *at.get('at', ()))}: {error['msg']}; got {_show(at.get('value'))}")
        elif error["type"] == "extra_forbidden":
            known = ", ".join(fields) or "(none)"
            line = f"{path}: unknown option ({owner} takes: {known}); got {_show(error['input'])}"
            hint = did_you_mean(loc[-1], fields)
            lines.append(f"{line}; {hint}" if hint else line)
        elif loc and error["type"] != "missing":
            lines.append(f"{path}: {_rule(error)}; got {_show(error['input'])}")
        else:  # a rule across fields, or a missing key: there is no one value to show
            lines.append(f"{path}: {_rule(error)}")
    return lines
