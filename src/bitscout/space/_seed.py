"""MASE's search-space seeds (``[search.search_space.seed.<key>.config]``) -> per-layer choices."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from bitscout.config import BitscoutConfigWarning
from bitscout.errors import ConfigError, did_you_mean
from bitscout.graph import QUANTIZABLE_FUNCTIONS, QUANTIZABLE_MODULES, LayerTable

__all__ = ["resolve_seeds", "known_op_types", "SEED_PATH", "DEFAULT_KEY"]

SEED_PATH = "search.search_space.seed"
"""TOML path of the seeds, for messages."""

DEFAULT_KEY = "default"


def known_op_types(table: LayerTable) -> list[str]:
    """Op types bitscout can quantize (whether or not this model has them), sorted."""
    known = set(QUANTIZABLE_MODULES.values()) | set(QUANTIZABLE_FUNCTIONS.values())
    return sorted(known | set(table.op_types()))


def _suggest(key: str, candidates: list[str]) -> str:
    hint = did_you_mean(key, candidates, sentence=True)
    return f" {hint}" if hint else ""


def resolve_seeds(
    by: str,
    seed: Mapping[str, Mapping[str, Any]],
    table: LayerTable,
) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """Chooses the seed of every layer, MASE's way.

    ``by = "type"``: a layer takes ``seed[<its op type>]`` if present, else
    ``seed["default"]``; ``by = "name"``: ``seed[<node name>]``, else the default. A layer
    with neither stays in floating point.

    MASE's own example configs carry a type seed (``linear``) and a name seed
    (``seq_blocks_2``) side by side and pick one with ``by``, so a key that is valid in the
    *other* mode, or an op type this model does not have, is ignored with a
    :class:`bitscout.config.BitscoutConfigWarning` rather than refused. A key that is
    neither an op type nor a node name of this model is a typo and an error.

    Args:
        by: ``"type"`` or ``"name"``.
        seed: Key -> field -> choices.
        table: The layer table of the model.

    Returns:
        Node name -> (the seed key it took, its field -> choices), for the layers that
        have a seed; layers without one are left out (they stay float).

    Raises:
        ConfigError: ``by`` is invalid, or a seed key matches neither an op type nor a
            node name (the message lists the valid keys and suggests the nearest).
    """
    if by not in ("type", "name"):
        raise ConfigError(
            f"search.search_space.setup.by must be 'type' or 'name'; got {by!r} instead."
        )
    names = table.names()
    present_types = table.op_types()
    op_types = known_op_types(table)
    for key in seed:
        if key == DEFAULT_KEY:
            continue
        if by == "type":
            if key in present_types:
                continue
            if key in op_types:
                _warn(f"{SEED_PATH}.{key}: the model has no '{key}' layer; this seed is ignored.")
                continue
            if key in names:
                _warn(
                    f"{SEED_PATH}.{key}: '{key}' is a node name but setup.by = 'type'; this "
                    "seed is ignored (set search.search_space.setup.by = 'name' to use it)."
                )
                continue
            valid = present_types + [DEFAULT_KEY]
            raise ConfigError(
                f"{SEED_PATH}.{key}: no layer has op type {key!r} (setup.by = 'type')."
                f"{_suggest(key, valid + names)} The model's op types are: "
                f"{', '.join(valid)}; its node names (for setup.by = 'name'): "
                f"{', '.join(names) or '(none)'}."
            )
        else:
            if key in names:
                continue
            if key in op_types:
                _warn(
                    f"{SEED_PATH}.{key}: '{key}' is an op type but setup.by = 'name'; this "
                    "seed is ignored (set search.search_space.setup.by = 'type' to use it)."
                )
                continue
            valid = names + [DEFAULT_KEY]
            raise ConfigError(
                f"{SEED_PATH}.{key}: the model has no node named {key!r} (setup.by = "
                f"'name').{_suggest(key, valid)} Its node names are: {', '.join(valid)}."
            )

    resolved: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for layer in table:
        key = layer.op if by == "type" else layer.name
        if key not in seed:
            key = DEFAULT_KEY
        if key in seed:
            resolved[layer.name] = (key, seed[key])
    return resolved


def _warn(message: str) -> None:
    warnings.warn(message, BitscoutConfigWarning, stacklevel=4)
