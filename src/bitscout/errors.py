"""Errors bitscout raises for people to read.

Every error a user can cause (a bad config, a missing file, a model that cannot be
traced) is a :class:`BitscoutError`. The CLI prints its message without a traceback and
exits with status 2. Messages say what was wrong, where, and what to do.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "did_you_mean",
    "BitscoutError",
    "ConfigError",
    "DataError",
    "ModelError",
    "CheckpointError",
    "QuantConfigError",
    "TraceError",
    "SearchError",
    "ExportError",
    "BitscoutWarning",
]


def did_you_mean(word: object, choices: Iterable[object], *, cutoff: float = 0.6, sentence: bool = False) -> str:
    """The one "did you mean" hint of bitscout's messages.

    Args:
        word: What the user wrote.
        choices: What would have been accepted.
        cutoff: How close (0..1, :func:`difflib.get_close_matches`) a choice must be.
        sentence: ``"Did you mean 'x'?"`` (a sentence of its own) instead of
            ``"did you mean 'x'?"`` (after a ``;``).

    Returns:
        The hint naming the nearest choice, or ``""`` when none is close.
    """
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=cutoff)
    if not close:
        return ""
    return f"{'Did' if sentence else 'did'} you mean {close[0]!r}?"


class BitscoutError(Exception):
    """Base of every error bitscout raises on purpose."""


class ConfigError(BitscoutError):
    """A TOML config or a command-line override is invalid."""


class DataError(BitscoutError):
    """A dataset cannot be found, read or understood."""


class ModelError(BitscoutError):
    """A model cannot be built."""


class CheckpointError(BitscoutError):
    """A checkpoint is missing or does not fit the model."""


class QuantConfigError(BitscoutError):
    """A quantization config cannot be built (names the layer, the field and the value)."""


class TraceError(BitscoutError):
    """torch.fx cannot trace a model (names the module and the line that broke the trace)."""


class SearchError(BitscoutError):
    """A search cannot start or cannot go on."""


class ExportError(BitscoutError):
    """A search result cannot be exported or verified."""


class BitscoutWarning(UserWarning):
    """Something a user should know that does not stop the run (the CLI prints it as
    ``warning: ...``)."""
