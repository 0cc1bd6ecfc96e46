"""User models given as ``"package.module:factory"``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from bitscout.config._plugins import import_object, is_import_spec
from bitscout.data import DatasetInfo
from bitscout.errors import ModelError

__all__ = ["build_user_model"]


def build_user_model(spec: str, info: DatasetInfo, options: Mapping[str, Any]) -> nn.Module:
    """Import ``package.module``, call ``factory`` and check it returned an ``nn.Module``.

    The factory gets ``info=info`` when its signature names an ``info`` parameter (a
    ``**kwargs`` factory is not handed one: it did not ask for it), and ``options`` as
    keyword arguments.

    Raises:
        ModelError: Names the part that failed: the spec's form, the import, the
            attribute, the call, or the type of what it returned.
    """
    if not is_import_spec(spec):
        raise ModelError(
            f"model {spec!r} must be a registered name or 'package.module:factory' "
            "(one colon between a module path and a function name)"
        )
    factory = import_object(spec, what="model", error=ModelError)
    module_name, _, attr = spec.partition(":")
    if not callable(factory):
        raise ModelError(f"model {spec!r}: {attr!r} in {module_name!r} is not callable")
    kwargs = dict(options)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    info_param = params.get("info")
    if info_param is not None and info_param.kind not in (
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
        inspect.Parameter.POSITIONAL_ONLY,
    ):
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
