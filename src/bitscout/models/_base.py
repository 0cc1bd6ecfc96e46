"""The model registry: a short name -> a builder that makes a fresh ``nn.Module``."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import pydantic
from torch import nn

from bitscout.config._problems import describe_validation_error
from bitscout.data import DatasetInfo
from bitscout.errors import ModelError

__all__ = [
    "ModelBuilder",
    "NoOptions",
    "register_model",
    "get_model_builder",
    "model_names",
    "build_model",
]


class NoOptions(pydantic.BaseModel):
    """Options of a model builder that takes none."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


class ModelBuilder(abc.ABC):
    """Builds one kind of model for a data set.

    Subclasses set :attr:`name`, :attr:`description` and :attr:`options_model` (a
    pydantic model of the keyword options it takes, ``extra="forbid"``) and implement
    :meth:`build`. Every model a builder makes must be traceable by ``torch.fx`` and
    deterministic given ``torch.manual_seed``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    options_model: ClassVar[type[pydantic.BaseModel]] = NoOptions

    def parse_options(self, options: Mapping[str, Any]) -> pydantic.BaseModel:
        """Validate ``options`` against :attr:`options_model`.

        Raises:
            ModelError: An unknown option or a bad value (each problem is named).
        """
        try:
            return self.options_model.model_validate(dict(options))
        except pydantic.ValidationError as exc:
            problems = describe_validation_error(
                exc,
                "model_options",
                owner=f"model {self.name!r}",
                fields=list(self.options_model.model_fields),
            )
            if len(problems) == 1:
                raise ModelError(f"bad options for model {self.name!r}: {problems[0]}") from None
            raise ModelError(
                f"bad options for model {self.name!r}:\n  " + "\n  ".join(problems)
            ) from None

    @abc.abstractmethod
    def build(self, info: DatasetInfo, options: pydantic.BaseModel) -> nn.Module:
        """Make a new model for a data set described by ``info``.

        Args:
            info: Input shape and class count of the data set.
            options: The validated options (an instance of :attr:`options_model`).

        Raises:
            ModelError: The model cannot be built for this data set.
        """


_REGISTRY: dict[str, ModelBuilder] = {}


def register_model(builder: ModelBuilder) -> ModelBuilder:
    """Make a model available to :func:`build_model` under ``builder.name``.

    Raises:
        ValueError: Another builder already has that name.
    """
    if builder.name in _REGISTRY and type(_REGISTRY[builder.name]) is not type(builder):
        raise ValueError(f"a model named {builder.name!r} is already registered")
    _REGISTRY[builder.name] = builder
    return builder


def model_names() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_REGISTRY)


def get_model_builder(name: str) -> ModelBuilder:
    """Look a model builder up by name.

    Raises:
        ModelError: No builder has that name (the message lists those that exist).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; available: {', '.join(model_names())}, "
            "or a factory of your own given as 'package.module:function'"
        ) from None


def build_model(name: str, info: DatasetInfo, options: Mapping[str, Any] | None = None) -> nn.Module:
    """Build a fresh model (in training mode, on the CPU).

    Args:
        name: A registered name (:func:`model_names`), or ``"package.module:factory"``
            for a model of your own: the factory is called with ``info=info`` when it
            takes an ``info`` argument, else with no arguments; ``options`` are passed
            to it as keyword arguments.
        info: The data set the model is for.
        options: Keyword options of the builder (``model_options`` in the config).

    Raises:
        ModelError: Unknown name, bad options, or the model cannot be built.
    """
    options = {} if options is None else options
    if ":" in name:
        from bitscout.models._user import build_user_model

        return build_user_model(name, info, options)
    builder = get_model_builder(name)
    return builder.build(info, builder.parse_options(options))
