"""One problem found in a config, and how it is worded for a person.

Every problem reads ``<file>: <toml.dotted.path>: <rule>; got <value>`` (or, for a
command-line option, ``--n-trials: <rule>; got <value>``), optionally followed by a hint
such as ``did you mean 'n_trials'?``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bitscout.config._rules import quote

__all__ = ["Problem", "NOTHING", "toml_key", "join_path", "suggest", "render_problems"]

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
    nearest = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if nearest:
        return f"did you mean {nearest[0]!r}?"
    return f"valid keys here: {quote(valid)}"


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
