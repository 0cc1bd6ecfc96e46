"""Search spaces: per-layer quantization choices as Optuna parameters.

A :class:`SearchSpace` holds, for every layer of a model's layer table, a tuple of
choices per MASE field (``name``, ``weight_width``, ...). Build one from a TOML
``[search.search_space]`` section with :meth:`SearchSpace.from_config`, or from Python
with ``SearchSpace(table, {"fc1": {"name": "integer", "weight_width": [4, 8]}})``::

    space = SearchSpace.from_config(config.search.search_space, traced.table)
    print(space.describe())
    config = space.decode(trial.params)       # node name -> LayerQuantConfig | None
"""

from bitscout.space._seed import known_op_types, resolve_seeds
from bitscout.space._space import (
    MAX_LAYER_COMBINATIONS,
    Choice,
    LayerChoices,
    Param,
    SearchSpace,
)

__all__ = [
    "SearchSpace",
    "Param",
    "LayerChoices",
    "Choice",
    "MAX_LAYER_COMBINATIONS",
    "resolve_seeds",
    "known_op_types",
]
