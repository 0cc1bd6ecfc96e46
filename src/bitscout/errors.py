"""Errors bitscout raises for people to read.

Every error a user can cause (a bad config, a missing file, a model that cannot be
traced) is a :class:`BitscoutError`. The CLI prints its message without a traceback and
exits with status 2. Messages say what was wrong, where, and what to do.
"""

from __future__ import annotations

__all__ = [
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
