"""bitscout: find how few bits a neural network can live with.

``bitscout.search(model, data=..., space=..., objective=...)`` searches a trained model's
per-layer quantization from Python (:mod:`bitscout.api`); the ``bitscout`` command does
the same from a TOML config. Importing this package is cheap: the API (and torch) is
imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "search", "ApiSearchResult"]

_LAZY = {"search", "ApiSearchResult"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from bitscout import api

        return getattr(api, name)
    raise AttributeError(f"module 'bitscout' has no attribute {name!r}")
