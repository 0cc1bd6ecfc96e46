"""User models given as ``"package.module:factory"``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from bitscout.data import DatasetInfo
from bitscout.errors import ModelError

__all__ = ["build_user_model"]


def build_user_model(spec: str, info: DatasetInfo, options: Mapping[str, Any]) -> nn.Module:
    """Import ``package.module``, call ``factory`` and check it returned an ``nn.Module``.

    The factory gets ``info=info`` when its signature has an ``info`` parameter (or
    ``**kwargs``), and ``options`` as keyword arguments.

    Raises:
        ModelError: Names the part that failed: the spec's form, the import, the
            attribute, the call, or the type of what it returned.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr or ":" in attr:
        raise ModelError(
            f"model {spec!r} must be a registered name or 'package.module:factory' "
            "(one colon between a module path and a function name)"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(
            f"model {spec!r}: cannot import module {module_name!r}: {exc}. Is it installed, "
            "or on PYTHONPATH (run bitscout from the folder that contains it)?"
        ) from exc
    factory = module
    for part in attr.split("."):
        try:
            factory = getattr(factory, part)
        except AttributeError:
            raise ModelError(
                f"model {spec!r}: module {module_name!r} has no attribute {attr!r}"
            ) from None
    if not callable(factory):
        raise ModelError(f"model {spec!r}: {attr!r} in {module_name!r} is not callable")
    kwargs = dict(options)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    takes_info = "info" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if takes_info:
        kwargs["info"] = info
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise ModelError(
            f"model {spec!r}: calling {attr}({', '.join(f'{k}=...' for k in kwargs)}) "
            f"failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelError(
            f"model {spec!r}: {attr} returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model
