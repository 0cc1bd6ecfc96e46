"""The search space: per-layer choices, their parameters, decoding, keys and enumeration."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from optuna.distributions import CategoricalDistribution

from bitscout.errors import ConfigError, QuantConfigError, SearchError
from bitscout.graph import LayerInfo, LayerTable
from bitscout.quant import NA, TENSOR_NAMES, LayerQuantConfig, fields_of_formats, parse_layer_config
from bitscout.space._seed import SEED_PATH, resolve_seeds

if TYPE_CHECKING:
    from bitscout.config import SearchSpaceConfig

__all__ = ["Choice", "Param", "LayerChoices", "SearchSpace", "MAX_LAYER_COMBINATIONS"]

Choice: TypeAlias = str | int | float | bool
"""One value a field can take (what a TOML list holds)."""

LayerConfigs: TypeAlias = dict[str, LayerQuantConfig | None]

MAX_LAYER_COMBINATIONS = 1_000_000
"""Most combinations of choices one layer may have: each is parsed when the space is built."""

_FLOAT: tuple[Any, ...] = (None,)


@dataclass(frozen=True)
class Param:
    """One searched parameter: a field of one layer with more than one choice.

    Attributes:
        name: ``"<layer>/<field>"``, the name the parameter has in the Optuna study.
        layer: The node name of the layer.
        field: The MASE field (``"weight_width"``).
        choices: The values it can take, in the order the seed lists them.
    """

    name: str
    layer: str
    field: str
    choices: tuple[Choice, ...]

    @property
    def distribution(self) -> CategoricalDistribution:
        """The parameter as an Optuna distribution."""
        return CategoricalDistribution(self.choices)


@dataclass(frozen=True, eq=False)
class LayerChoices:
    """The choices of one layer, and every configuration they give.

    Built and validated by :class:`SearchSpace`; read-only.

    Attributes:
        info: The layer, from the layer table.
        seed: The seed key it took (``"linear"``, ``"seq_blocks_2"``, ``"default"``), or
            None when the space was built from Python without seeds or the layer has no
            choices (it stays float).
        choices: Field -> choices for every field that matters for this layer (fields of
            tensors the layer lacks, and every field of a layer whose only ``name`` is
            ``"NA"``, are dropped: they cannot change the model).
        params: The searched fields (more than one choice), in field order.
        configs: The config of every combination of the searched fields, in mixed-radix
            order (first parameter slowest); None where the combination leaves the layer
            float. Equal configs are the same object.
        distinct: Position of each distinct config in ``configs``' order of first
            appearance, per combination: ``distinct[c]`` is the distinct index of
            combination ``c``.
        representatives: For each distinct index, its first combination.
    """

    info: LayerInfo
    seed: str | None
    choices: Mapping[str, tuple[Choice, ...]]
    params: tuple[Param, ...]
    configs: tuple[LayerQuantConfig | None, ...]
    distinct: tuple[int, ...]
    representatives: tuple[int, ...]
    _index: dict[tuple[Any, ...], int] = field(repr=False)
    _values: tuple[tuple[Any, ...], ...] = field(repr=False)

    @property
    def name(self) -> str:
        """The node name."""
        return self.info.name

    @property
    def size(self) -> int:
        """Combinations of the searched fields."""
        return len(self.configs)

    @property
    def distinct_size(self) -> int:
        """Distinct configs among those combinations."""
        return len(self.representatives)

    @property
    def fixed(self) -> dict[str, Choice]:
        """Fields with a single choice, and their value."""
        return {f: c[0] for f, c in self.choices.items() if len(c) == 1}


class SearchSpace:
    """Per-layer quantization choices of one model, as a space of Optuna parameters.

    Every field of a layer holds a tuple of choices; the fields with more than one
    choice are the searched :attr:`params` (named ``"<layer>/<field>"``), the others are
    fixed. A parameter vector gives one value to every searched parameter; :meth:`decode`
    turns it into one :class:`bitscout.quant.LayerQuantConfig` (or None: float) per layer.

    Counting. :attr:`size` is the number of parameter vectors (the product of the
    searched parameters' choice counts, what Optuna sees). Different vectors can build
    the same model: when a layer's ``name`` is ``"NA"`` (float) its other fields do not
    matter, and ``"NA"`` for a frac width equals ``width // 2`` written out. Each layer's
    configs are all built when the space is built, so :attr:`distinct_size` is exact:
    the product over layers of the number of distinct configs each layer can take.

    Orders. :meth:`params_at` / :meth:`index_of` are a mixed-radix bijection between
    ``0 .. size - 1`` and parameter vectors, first parameter slowest (parameters in
    layer order, then field order). :meth:`distinct_params_at` /
    :meth:`distinct_index_of` do the same for ``0 .. distinct_size - 1`` and distinct
    configurations, each represented by its first vector in the same order (so, when no
    two vectors collapse, both orders coincide). Brute force enumerates the latter.

    Validation. Every combination of each layer's choices is parsed when the space is
    built (layers with the same tensors and choices share the work), so a value that
    cannot be built is a :class:`bitscout.errors.QuantConfigError` naming the layer, the
    field and the value before any trial runs.

    Args:
        table: The layer table of the model.
        choices: Node name -> field -> choices (a scalar is one choice), as in MASE's flat
            per-layer form (``{"name": ["integer"], "weight_width": [4, 8], ...}``).
            Layers not named stay float. This is the Python API; TOML configs go through
            :meth:`from_config`.
        seeds: Node name -> the seed key its choices came from (for messages);
            :meth:`from_config` fills it.

    Raises:
        ConfigError: A layer name the table does not have, an empty list of choices, or a
            choice that is not a scalar.
        QuantConfigError: A combination of a layer's choices cannot be built.
    """

    def __init__(
        self,
        table: LayerTable,
        choices: Mapping[str, Mapping[str, Any]],
        *,
        seeds: Mapping[str, str] | None = None,
    ) -> None:
        unknown = [name for name in choices if name not in table]
        if unknown:
            raise ConfigError(
                f"search space: the model has no quantizable layer named {unknown[0]!r}; "
                f"its layers are: {', '.join(table.names()) or '(none)'}"
            )
        seeds = dict(seeds or {})
        self.table = table
        built: dict[tuple[Any, ...], tuple[LayerQuantConfig | None, ...]] = {}
        layers = []
        for info in table:
            raw = choices.get(info.name)
            layers.append(_build_layer(info, raw, seeds.get(info.name), built))
        self._layers: tuple[LayerChoices, ...] = tuple(layers)
        self._by_name = {layer.name: layer for layer in self._layers}
        self._params: tuple[Param, ...] = tuple(p for layer in self._layers for p in layer.params)
        self._radices = tuple(len(p.choices) for p in self._params)
        self._positions = tuple(_positions(p.choices) for p in self._params)
        self.size: int = math.prod(self._radices)
        self.distinct_size: int = math.prod(layer.distinct_size for layer in self._layers)
        # What decode walks per call: (node name, parameter names, values -> config),
        # keyed by the bare value when a layer has one parameter (no tuple to build).
        self._decoders = tuple(
            (
                layer.name,
                tuple(p.name for p in layer.params),
                {
                    (values[0] if len(values) == 1 else values): layer.configs[i]
                    for values, i in layer._index.items()
                },
            )
            for layer in self._layers
        )
        # What distinct_index_of walks: (parameter names, values -> distinct index, count).
        self._distinct_lookup = tuple(
            (
                tuple(p.name for p in layer.params),
                {values: layer.distinct[i] for values, i in layer._index.items()},
                layer.distinct_size,
            )
            for layer in self._layers
        )
        # key() looks configs up by identity first (the ones decode hands out; the layers
        # hold them, so their ids stay theirs).
        self._key_parts: dict[int, tuple[tuple[str, Any], ...]] = {}
        for layer in self._layers:
            for cfg in layer.configs:
                if cfg is not None and id(cfg) not in self._key_parts:
                    self._key_parts[id(cfg)] = tuple(cfg.to_dict().items())

    @classmethod
    def from_config(cls, cfg: SearchSpaceConfig, table: LayerTable) -> SearchSpace:
        """Builds the space of a ``[search.search_space]`` section (MASE's schema).

        With ``by = "type"`` each layer takes ``seed[<its op type>]`` if present, else
        ``seed["default"]``; with ``by = "name"``, ``seed[<node name>]``, else the default.
        A layer with neither stays float. Seed keys valid only in the other mode (MASE's
        examples carry both a ``linear`` and a ``seq_blocks_2`` seed) are ignored with a
        warning; a key that is neither an op type nor a node name is an error.

        Args:
            cfg: The section (``bitscout.config.SearchSpaceConfig``, or any object with
                ``by`` and ``seed``: key -> field -> choices).
            table: The layer table of the model.

        Returns:
            The space.

        Raises:
            ConfigError: A seed key that matches nothing (with the valid keys and the
                nearest one), or a malformed list of choices.
            QuantConfigError: A combination of choices that cannot be built.
        """
        resolved = resolve_seeds(cfg.by, cfg.seed, table)
        return cls(
            table,
            {name: fields for name, (_, fields) in resolved.items()},
            seeds={name: key for name, (key, _) in resolved.items()},
        )

    # -- structure ---------------------------------------------------------------------

    @property
    def params(self) -> tuple[Param, ...]:
        """The searched parameters (fields with more than one choice), in order."""
        return self._params

    @property
    def layers(self) -> tuple[LayerChoices, ...]:
        """Every layer of the table with its choices, in graph order."""
        return self._layers

    def layer(self, name: str) -> LayerChoices:
        """The choices of layer ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise SearchError(
                f"the search space has no layer named {name!r}; "
                f"its layers are: {', '.join(self._by_name) or '(none)'}"
            ) from None

    @property
    def fixed(self) -> dict[str, Choice]:
        """``"<layer>/<field>"`` -> value for every field with a single choice."""
        return {
            f"{layer.name}/{f}": value for layer in self._layers for f, value in layer.fixed.items()
        }

    def distributions(self) -> dict[str, CategoricalDistribution]:
        """Parameter name -> Optuna distribution; a study suggests exactly these."""
        return {p.name: p.distribution for p in self._params}

    def __repr__(self) -> str:
        return (
            f"SearchSpace({len(self._layers)} layers, {len(self._params)} params, "
            f"size={self.size}, distinct_size={self.distinct_size})"
        )

    # -- decoding ----------------------------------------------------------------------

    def decode(self, params: Mapping[str, Any]) -> LayerConfigs:
        """The config of every layer for one parameter vector.

        Per layer, the same combination of values always gives the same
        :class:`LayerQuantConfig` object (looked up, never re-parsed). Entries of
        ``params`` that are not parameters of this space are ignored.

        Args:
            params: Parameter name -> value (an Optuna trial's ``params``).

        Returns:
            Node name -> config (None: float), for every layer of the table.

        Raises:
            SearchError: A parameter is missing or holds a value that is not one of its
                choices.
        """
        out: LayerConfigs = {}
        try:
            for name, names, lookup in self._decoders:
                if not names:
                    out[name] = lookup[()]
                elif len(names) == 1:
                    out[name] = lookup[params[names[0]]]
                else:
                    out[name] = lookup[tuple([params[p] for p in names])]
        except (KeyError, TypeError):
            self._raise_bad_params(params)
        return out

    def key(self, config: Mapping[str, LayerQuantConfig | None]) -> tuple[Any, ...]:
        """A canonical, hashable key of a decoded config: equal models, equal keys.

        The key holds, per layer in graph order, None (float) or the config's flat MASE
        form with every field explicit (``LayerQuantConfig.to_dict()`` items), so it is
        made of plain scalars: the same in every process, printable and picklable.
        Layers missing from ``config`` count as float.

        Raises:
            SearchError: ``config`` names a layer the space does not have.
        """
        extra = [name for name in config if name not in self._by_name]
        if extra:
            raise SearchError(
                f"the config names layer {extra[0]!r}, which the search space does not have; "
                f"its layers are: {', '.join(self._by_name)}"
            )
        parts = []
        for layer in self._layers:
            cfg = config.get(layer.name)
            if cfg is None:
                parts.append(None)
                continue
            part = self._key_parts.get(id(cfg))
            parts.append(part if part is not None else tuple(cfg.to_dict().items()))
        return tuple(parts)

    def canonical(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The representative vector of the configuration ``params`` builds.

        Fields that do not matter (those of a layer that ``name = "NA"`` leaves float)
        are set to the values of the first vector, in :meth:`params_at` order, that
        builds the same config.
        """
        return self.distinct_params_at(self.distinct_index_of(params))

    # -- enumeration -------------------------------------------------------------------

    def params_at(self, index: int) -> dict[str, Any]:
        """The parameter vector at ``index`` (0 .. size - 1), first parameter slowest.

        Raises:
            IndexError: ``index`` is outside ``0 .. size - 1``.
        """
        if not 0 <= index < self.size:
            raise IndexError(f"index must be in 0..{self.size - 1}; got {index}")
        digits = []
        for radix in reversed(self._radices):
            index, digit = divmod(index, radix)
            digits.append(digit)
        digits.reverse()
        return {p.name: p.choices[d] for p, d in zip(self._params, digits)}

    def index_of(self, params: Mapping[str, Any]) -> int:
        """The index of a parameter vector: the inverse of :meth:`params_at`.

        Raises:
            SearchError: A parameter is missing or holds a value that is not a choice.
        """
        index = 0
        try:
            for p, radix, positions in zip(self._params, self._radices, self._positions):
                index = index * radix + positions[params[p.name]]
        except (KeyError, TypeError):
            self._raise_bad_params(params)
        return index

    def distinct_params_at(self, index: int) -> dict[str, Any]:
        """The representative vector of distinct configuration ``index``.

        ``index`` runs over ``0 .. distinct_size - 1``, first layer slowest; within a
        layer, distinct configs come in the order their first combination appears.

        Raises:
            IndexError: ``index`` is outside ``0 .. distinct_size - 1``.
        """
        if not 0 <= index < self.distinct_size:
            raise IndexError(f"index must be in 0..{self.distinct_size - 1}; got {index}")
        per_layer = []
        for layer in reversed(self._layers):
            index, digit = divmod(index, layer.distinct_size)
            per_layer.append((layer, layer.representatives[digit]))
        out: dict[str, Any] = {}
        for layer, combo in reversed(per_layer):
            for p, value in zip(layer.params, layer._values[combo]):
                out[p.name] = value
        return out

    def distinct_index_of(self, params: Mapping[str, Any]) -> int:
        """The distinct-configuration index of a vector (equal configs, equal index).

        A cheap dedup key: an ``int`` that two vectors share exactly when they build the
        same model.

        Raises:
            SearchError: A parameter is missing or holds a value that is not a choice.
        """
        index = 0
        try:
            for names, lookup, count in self._distinct_lookup:
                if names:
                    index = index * count + lookup[tuple([params[p] for p in names])]
        except (KeyError, TypeError):
            self._raise_bad_params(params)
        return index

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Every parameter vector in index order (beware: :attr:`size` of them)."""
        return (self.params_at(i) for i in range(self.size))

    # -- printing ----------------------------------------------------------------------

    def describe(self) -> str:
        """A table of the layers, their choices, and the number of configurations."""
        header = ("layer", "op", "seed", "choices", "configs")
        rows = [header]
        for layer in self._layers:
            if not layer.choices:
                text = "float (no seed)"
            elif layer.configs == _FLOAT:
                text = "float (name = NA)"
            else:
                text = ", ".join(
                    f"{f}={_fmt_choices(c)}" for f, c in layer.choices.items()
                )
            count = str(layer.size)
            if layer.distinct_size != layer.size:
                count += f" ({layer.distinct_size} distinct)"
            rows.append((layer.name, layer.info.op, layer.seed or "-", text, count))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
        ]
        total = f"{self.size:,} configurations ({len(self._params)} searched parameters)"
        if self.distinct_size != self.size:
            total = (
                f"{self.size:,} parameter combinations, {self.distinct_size:,} distinct "
                f"configurations ({len(self._params)} searched parameters)"
            )
        lines.append(f"total: {total}")
        return "\n".join(lines)

    # -- helpers -----------------------------------------------------------------------

    def _raise_bad_params(self, params: Mapping[str, Any]) -> None:
        for p in self._params:
            if p.name not in params:
                raise SearchError(
                    f"parameter {p.name!r} is missing; the space's parameters are: "
                    f"{', '.join(q.name for q in self._params)}"
                )
            value = params[p.name]
            if not _contains(p.choices, value):
                raise SearchError(
                    f"parameter {p.name!r} must be one of {list(p.choices)}; got {value!r}"
                )
        raise SearchError(f"parameters {dict(params)!r} do not fit the search space")


def _contains(choices: Sequence[Any], value: Any) -> bool:
    try:
        return value in _positions(choices)
    except TypeError:
        return False


def _positions(choices: Sequence[Any]) -> dict[Any, int]:
    return {value: i for i, value in enumerate(choices)}


def _fmt_choices(choices: tuple[Any, ...]) -> str:
    text = "|".join(str(c) for c in choices)
    return text if len(choices) == 1 else "{" + text + "}"


def _normalize(where: str, raw: Any) -> tuple[Choice, ...]:
    """A field's value as a tuple of distinct scalar choices."""
    values = tuple(raw) if isinstance(raw, (list, tuple)) else (raw,)
    if not values:
        raise ConfigError(f"{where}: must hold at least one choice; got []")
    out: list[Choice] = []
    for value in values:
        if not isinstance(value, (str, int, float, bool)):
            raise ConfigError(
                f"{where}: each choice must be a string, integer, float or boolean; "
                f"got {value!r}"
            )
        same = [v for v in out if v == value]
        if same and any(type(v) is not type(value) for v in same):
            # 4 and 4.0 (or 1 and True) are one key for Optuna and for lookups.
            raise ConfigError(
                f"{where}: choices {same[0]!r} and {value!r} are equal but of different "
                f"types; keep one of them; got {list(values)!r}"
            )
        if not same:
            out.append(value)
    return tuple(out)


def _relevant(info: LayerInfo, raw: Mapping[str, Any], where: str) -> dict[str, tuple[Choice, ...]]:
    """The fields that can change this layer's model, normalized."""
    fields = {str(f): _normalize(f"{where}.{f}", v) for f, v in raw.items()}
    if "name" in fields and all(v == NA for v in fields["name"]):
        return {"name": (NA,)}
    absent = [t for t in TENSOR_NAMES if t not in info.tensors]
    return {
        f: v for f, v in fields.items() if not any(f.startswith(t + "_") for t in absent)
    }


def _build_layer(
    info: LayerInfo,
    raw: Mapping[str, Any] | None,
    seed: str | None,
    built: dict[tuple[Any, ...], tuple[LayerQuantConfig | None, ...]],
) -> LayerChoices:
    """Parses every combination of one layer's choices (sharing work through ``built``)."""
    where = f"{SEED_PATH}.{seed}.config" if seed is not None else f"layer {info.name}"
    if raw is None:
        return LayerChoices(info, None, {}, (), _FLOAT, (0,), (0,), {(): 0}, ((),))
    choices = _relevant(info, raw, where)
    searched = [f for f, c in choices.items() if len(c) > 1]
    params = tuple(Param(f"{info.name}/{f}", info.name, f, choices[f]) for f in searched)
    n_combos = math.prod(len(choices[f]) for f in searched)
    if n_combos > MAX_LAYER_COMBINATIONS:
        raise ConfigError(
            f"{where}: layer {info.name!r} has {n_combos:,} combinations of choices "
            f"(more than {MAX_LAYER_COMBINATIONS:,}); shorten its lists of choices"
        )
    # Types too: choices 4 and 4.0 hash alike but need not parse alike.
    signature = (
        info.tensors,
        tuple((f, tuple((type(v), v) for v in c)) for f, c in choices.items()),
    )
    configs = built.get(signature)
    if configs is None:
        configs = _parse_all(info, choices, searched, where)
        built[signature] = configs
    values_list = list(itertools.product(*(choices[f] for f in searched)))
    first: dict[LayerQuantConfig | None, int] = {}
    distinct = []
    representatives = []
    for combo, cfg in enumerate(configs):
        pos = first.get(cfg)
        if pos is None:
            pos = first[cfg] = len(representatives)
            representatives.append(combo)
        distinct.append(pos)
    return LayerChoices(
        info=info,
        seed=seed,
        choices=choices,
        params=params,
        configs=tuple(configs),
        distinct=tuple(distinct),
        representatives=tuple(representatives),
        _index={values: i for i, values in enumerate(values_list)},
        _values=tuple(values_list),
    )


def _parse_all(
    info: LayerInfo,
    choices: Mapping[str, tuple[Choice, ...]],
    searched: Sequence[str],
    where: str,
) -> tuple[LayerQuantConfig | None, ...]:
    """Every combination's config, equal configs interned to one object."""
    fixed = {f: c[0] for f, c in choices.items() if f not in searched}
    # A seed listing several formats holds each one's fields; each ignores the others'.
    shared = fields_of_formats(choices.get("name", ()))
    interned: dict[LayerQuantConfig | None, LayerQuantConfig | None] = {}
    out = []
    label = f"{where} (layer {info.name})" if not where.startswith("layer ") else where
    for values in itertools.product(*(choices[f] for f in searched)):
        raw = dict(fixed)
        raw.update(zip(searched, values))
        try:
            cfg = parse_layer_config(raw, where=label, tensors=info.tensors, op=info.op, shared=shared)
        except QuantConfigError as err:
            combo = ", ".join(f"{f}={v!r}" for f, v in zip(searched, values))
            raise QuantConfigError(
                f"search space: {err} (in the combination {combo or 'of the fixed fields'} "
                f"of layer {info.name!r}; every combination of a layer's choices must build, "
                "so fix or remove the value, or add the missing field)"
            ) from None
        out.append(interned.setdefault(cfg, cfg))
    return tuple(out)
