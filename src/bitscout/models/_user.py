"""User models given as ``"package.module:factory"``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from bitscout.config._plugins import file_spec_hint, import_object, is_import_spec
from bitscout.config._problems import suggest
from bitscout.data import DatasetInfo
from bitscout.errors import ModelError

__all__ = ["build_user_model"]


def build_user_model(spec: str, info: DatasetInfo, options: Mapping[str, Any]) -> nn.Module:
    """Import ``package.module``, call ``factory`` and check the model it returns.

    The factory gets ``info=info`` when its signature names an ``info`` parameter (a
    ``**kwargs`` factory is not handed one: it did not ask for it), and ``options`` as
    keyword arguments. The model is then run once on a batch of two zero samples of the
    data set's input shape (:func:`check_model_output`), so that a model that does not
    fit the data fails here, with the shapes named, and not inside training or a trial.

    Raises:
        ModelError: Names the part that failed: the spec's form, the import, the
            attribute, the call, the type of what it returned, or its output on a
            batch of the data set's shape.
    """
    if not is_import_spec(spec):
        raise ModelError(
            f"model {spec!r} must be a registered name or 'package.module:factory' "
            f"(one colon between a module path and a function name){file_spec_hint(spec)}"
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
    _check_options(spec, attr, params, options, info_given="info" in kwargs)
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
    check_model_output(model, info, f"model {spec!r}")
    return model


def _check_options(
    spec: str,
    attr: str,
    params: Mapping[str, inspect.Parameter],
    options: Mapping[str, Any],
    *,
    info_given: bool,
) -> None:
    """Name a misspelt or missing ``model_options`` key before the call fails on it."""
    if not params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return  # a signature that cannot be read, or **kwargs: the call decides
    named = {
        name: p for name, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and not (name == "info" and info_given)
    }
    for key in options:
        if key not in named:
            raise ModelError(
                f"model_options.{key}: model {spec!r} ({attr}) takes no option {key!r}; "
                f"{suggest(key, named)}"
            )
    missing = [name for name, p in named.items() if p.default is inspect.Parameter.empty and name not in options]
    if missing:
        example = ", ".join(f"{name} = ..." for name in missing)
        raise ModelError(
            f"model {spec!r}: {attr} needs {', '.join(map(repr, missing))}, which model_options "
            f"does not give; set model_options = {{ {example} }} in the config"
        )


def check_model_output(model: nn.Module, info: DatasetInfo, what: str) -> None:
    """Run ``model`` on two zero samples of ``info.input_shape``; check it gives class scores.

    bitscout evaluates, trains and exports classifiers whose ``forward`` returns one
    tensor of shape ``(batch, num_classes)``; anything else would fail later, deep inside
    a loss or a metric. The probe runs in eval mode under ``torch.no_grad`` (BatchNorm
    statistics are not updated; the training flags are restored) and on a forked random
    state (a ``forward`` that draws random numbers does not shift later draws).

    Args:
        model: The model (the batch is made where its parameters are).
        info: The data set it is for.
        what: How messages name the model (``"model 'mymodels:Net'"``).

    Raises:
        ModelError: The forward pass fails on that batch, returns something other than
            a tensor (a tuple, a dict, an output object), or a tensor whose shape is not
            ``(2, info.num_classes)``.
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = torch.zeros(2, *info.input_shape, device=device)
    shape = f"(2, {', '.join(str(d) for d in info.input_shape)})"
    data = f"the data set {info.name!r} has inputs of shape {tuple(info.input_shape)} and {info.num_classes} classes"
    training = {module: module.training for module in model.modules()}
    try:
        model.eval()
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            out = model(x)
    except Exception as exc:  # the user's forward: any failure means "does not fit the data"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelError(
            f"{what}: running it on a batch of the data's shape {shape} failed: "
            f"{type(exc).__name__}: {first}. {data[0].upper()}{data[1:]}; check model_options (its input size) "
            "against the data set"
        ) from exc
    finally:
        for module, flag in training.items():
            module.training = flag
    if not isinstance(out, torch.Tensor):
        raise ModelError(
            f"{what}: forward returns a {type(out).__name__}, but bitscout needs one tensor "
            f"of class scores (logits) of shape (batch, {info.num_classes}). Return only the "
            "logits from forward (e.g. `return logits`, not `return logits, features` or a dict)"
        )
    if tuple(out.shape) != (2, info.num_classes):
        if out.ndim == 2 and out.shape[0] == 2:
            fix = (
                f"give the model {info.num_classes} outputs (model_options, e.g. its class "
                "count), or use the data set it was made for"
            )
        else:
            fix = "return one row of class scores per sample: shape (batch, classes)"
        raise ModelError(
            f"{what}: forward returns shape {tuple(out.shape)} for a batch of 2, but {data}, "
            f"so it must return shape (2, {info.num_classes}); {fix}"
        )
