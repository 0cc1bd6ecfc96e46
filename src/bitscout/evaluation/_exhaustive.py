"""Exhaustive post-training evaluation: every configuration of a space, sharing work.

When a search only evaluates candidates after training (``basic_evaluation`` plus
hardware runners computed from the layer table), the cost of one configuration is a
forward pass over the samples, and most of that pass is shared with other
configurations: two configurations that agree on the first ``k`` quantizable layers
compute the same activations up to layer ``k``. :func:`evaluate_exhaustively` runs the
traced graph node by node, in topological order, and branches at every quantizable layer
over that layer's distinct configurations, depth first: the activations of a prefix are
computed once and reused by every configuration of the later layers, and memory stays
bounded by one set of live activations per layer. At the leaves, the outputs of a block
of configurations are scored together (hit counts and per-class recalls in one batched
pass; the cross-entropy by :func:`bitscout.training.cross_entropy_sums`, the function a
trial's evaluation calls, whose bits do not depend on how samples and configurations are
grouped). A last layer with exact sums gives its block class by class, and the scoring
reads class maxima instead of an ``argmax`` per row. The cross-entropy is optional
(``loss=False``): without it the enumeration costs less (its ``exp`` of every logit).

Results are bit-for-bit those of a trial-by-trial evaluation (``RunnerSet.run``): every
layer runs the module a :class:`~bitscout.quant.Quantizer` candidate would hold, on the
same tensors, in the same chunks of samples, and the metrics are reduced in the same
order. The tests check this on samples of configurations and on whole smaller spaces.

What is supported. Any graph torch.fx traced into a DAG whose output is one tensor of
logits: a node's value is kept in the environment of the branch that computed it and
dropped after its last user, so skip connections and multi-input layers are handled
(a value computed under a prefix is correct for every completion of that prefix, because
graph order is a topological order). Software runner: exactly one ``basic_evaluation``
(no ``basic_train``: fine-tuning each candidate shares nothing). Hardware runners: those
that need only the config (the analytic ones: ``average_bitwidth``,
``activation_bitwidth``, ``model_size``, ``flops``, ``bitops``; ``latency`` times the
built model and is refused). :func:`exhaustive_support` says whether a runner set
qualifies and why not; :func:`evaluate_exhaustively` raises
:class:`~bitscout.errors.SearchError` with that reason.

Use in a search: :class:`bitscout.evaluation.TableEvaluator` answers each configuration
from the table (give it to :func:`bitscout.study.run_search` with the brute-force sampler
and every trial costs only the storage write).
"""

from __future__ import annotations

import itertools
import math
import operator
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from bitscout.errors import DataError, SearchError
from bitscout.metrics import BasicEvaluation, Candidate, TrialMetrics
from bitscout.metrics._software import _chunk_size
from bitscout.quant import Operands, QuantizedLayer, Quantizer, exact_sum_terms, fake_quantize
from bitscout.training import class_major, cross_entropy_sums

if TYPE_CHECKING:
    from bitscout.graph import TracedModel
    from bitscout.metrics import Runner, RunnerSet
    from bitscout.quant import LayerQuantConfig
    from bitscout.space import SearchSpace

__all__ = [
    "ExhaustiveResult",
    "evaluate_exhaustively",
    "evaluate_runner_set_exhaustively",
    "exhaustive_support",
    "DEFAULT_BLOCK_ELEMENTS",
    "DEFAULT_STACK_ELEMENTS",
]

#: Most output elements (configurations x samples x classes) scored in one leaf block.
DEFAULT_BLOCK_ELEMENTS = 1 << 18

#: Most input elements stacked into one layer call (configs that share a weight format).
DEFAULT_STACK_ELEMENTS = 1 << 22



@dataclass(eq=False)
class ExhaustiveResult:
    """The metrics of every distinct configuration of a space.

    Arrays are indexed by the space's distinct-configuration index
    (:meth:`bitscout.space.SearchSpace.distinct_params_at` order: first layer slowest).
    When no two parameter vectors of the space build the same model
    (``space.size == space.distinct_size``) this is also the :meth:`params_at` order.

    Attributes:
        space: The space that was enumerated.
        accuracy: Top-1 accuracy per configuration.
        balanced_accuracy: Mean per-class recall per configuration.
        loss: Mean cross-entropy per configuration (None when it was not asked for:
            see :func:`evaluate_exhaustively`'s ``loss``).
        hardware: Metric name -> values per configuration, for every hardware runner
            given (ratios included).
        num_samples: Samples each configuration was evaluated on.
        seconds: Wall time of the evaluation.
        forward_calls: Layer calls made (a measure of the sharing: a trial-by-trial
            evaluation makes ``configurations x layers`` of them).
    """

    space: SearchSpace
    accuracy: np.ndarray
    balanced_accuracy: np.ndarray
    loss: np.ndarray | None
    hardware: dict[str, np.ndarray] = field(default_factory=dict)
    num_samples: int = 0
    seconds: float = 0.0
    forward_calls: int = 0
    _positions: list[dict[Any, int]] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.accuracy)

    @property
    def software(self) -> dict[str, np.ndarray]:
        """``accuracy``, ``balanced_accuracy`` and ``loss`` (when computed) arrays by name."""
        arrays = {"accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy}
        if self.loss is not None:
            arrays["loss"] = self.loss
        return arrays

    def distinct_index(self, config: Mapping[str, LayerQuantConfig | None]) -> int:
        """The index of a decoded config (``space.decode(params)``) in the arrays.

        Raises:
            SearchError: A layer's config is not one of the space's choices for it.
        """
        if self._positions is None:
            self._positions = [_distinct_positions(layer) for layer in self.space.layers]
        index = 0
        for layer, positions in zip(self.space.layers, self._positions):
            cfg = config.get(layer.name)
            try:
                pos = positions[cfg]
            except (KeyError, TypeError):
                raise SearchError(
                    f"layer {layer.name!r}: the config {cfg!r} is not one of the search "
                    "space's choices for it, so it has no precomputed metrics"
                ) from None
            index = index * layer.distinct_size + pos
        return index

    def metrics_at(self, index: int) -> TrialMetrics:
        """The metrics of distinct configuration ``index`` as a trial record."""
        return TrialMetrics(
            software={name: float(values[index]) for name, values in self.software.items()},
            hardware={name: float(values[index]) for name, values in self.hardware.items()},
        )

    def metrics_for(self, config: Mapping[str, LayerQuantConfig | None]) -> TrialMetrics:
        """The metrics of a decoded config (see :meth:`distinct_index`)."""
        return self.metrics_at(self.distinct_index(config))


def _distinct_positions(layer: Any) -> dict[Any, int]:
    """Config object -> distinct position, for one layer's choices (LayerChoices)."""
    positions: dict[Any, int] = {}
    for cfg, pos in zip(layer.configs, layer.distinct):
        positions.setdefault(cfg, pos)
    return positions


# ----- support check ----------------------------------------------------------------------


def exhaustive_support(runners: RunnerSet) -> str | None:
    """Why a runner set cannot be evaluated exhaustively, or None when it can.

    Supported: exactly one software runner, ``basic_evaluation``, and hardware runners
    that compute their metrics from the config alone (checked by running each on the
    float reference candidate and seeing that it did not build the model).
    """
    software = [r for r in runners.software if not isinstance(r, BasicEvaluation)]
    if software:
        return (
            f"the software runner(s) {', '.join(r.name for r in software)} change or measure "
            "each candidate in ways that share no work between configurations; only "
            "basic_evaluation can be evaluated exhaustively"
        )
    if len(runners.software) != 1:
        return "exhaustive evaluation needs exactly one basic_evaluation runner"
    for runner in runners.hardware:
        probe = Candidate.float_reference(runners.context)
        runner.run(probe)
        if probe.is_built:
            return (
                f"the hardware runner {runner.name!r} measures the built model, so every "
                "configuration must be built and run on its own"
            )
    return None


# ----- the graph walker -------------------------------------------------------------------


@dataclass
class _Step:
    """One non-branching node: ``env[node] = run(env)``, then forget ``drop``."""

    node: fx.Node
    run: Callable[[dict[fx.Node, Any]], Any]
    drop: tuple[fx.Node, ...]


class _Layer:
    """One branching node: a quantizable layer and what each distinct config runs.

    A config that leaves the layer float runs the float module. A quantized one runs
    the steps of :class:`~bitscout.quant.QuantizedLayer`'s ``forward`` with the very
    wrapper a candidate holds (its op spec, weight cache and formats), split so that
    the input, quantized once per ``data_in`` format, is shared by every config with
    that format: the same calls on the same tensors, hence the same bits.
    """

    def __init__(
        self,
        node: fx.Node,
        name: str,
        modules: Sequence[nn.Module],
        drop: tuple[fx.Node, ...],
        *,
        copy_input: bool = False,
        stack_elements: int = 0,
    ) -> None:
        self.copy_input = copy_input
        self.node = node
        self.name = name
        self.modules = tuple(modules)
        self.drop = drop
        self._args = _resolver(node.args)
        self._kwargs = _resolver(node.kwargs)
        wrappers = [m for m in self.modules if isinstance(m, QuantizedLayer)]
        # Splitting needs one float layer and op spec behind every wrapper.
        self._split = bool(wrappers) and all(
            w.float_module is wrappers[0].float_module and w.spec is wrappers[0].spec for w in wrappers
        )
        self._spec = wrappers[0].spec if wrappers else None
        self._float = wrappers[0].float_module if wrappers else None
        self._params: dict[tuple[int, str], tuple[nn.Parameter, Any]] = {}
        # Stacking the inputs of configs that share a weight (see _stacked_outputs).
        self._stack = (
            self._split and self._spec is not None and self._spec.per_sample and not copy_input and stack_elements > 0
        )
        self._stack_elements = stack_elements
        self._checked: set[Any] = set()
        self._planned: tuple[Any, Any, list[tuple[Any, Any, Any, Any]]] | None = None
        # Configs whose sums are exact, computed side by side (see _exact_outputs).
        self._rows = (
            self._split
            and self._spec is not None
            and self._spec.rows_are_outputs
            and len(wrappers) == len(self.modules) > 1
            and not self._stack  # stacking rows (accelerators, or when asked) goes first
        )
        self._grid: tuple[Any, Any, list[tuple[Any, list[int], Any, Any]] | None] | None = None
        self._alone: list[int] = []  # configs with inexact sums beside the joined calls
        # When every input format meets the same weights: one call for all (see _product).
        self._product: _Product | None = None

    def __len__(self) -> int:
        return len(self.modules)

    def branches(self, env: dict[fx.Node, Any]) -> Iterator[dict[fx.Node, Any]]:
        """One environment per distinct config: ``env`` plus the layer's output."""
        if self.copy_input:
            # An in-place layer (ReLU(inplace=True)) writes into its input: each config
            # writes into its own copy, which its branch then reads in place of the input.
            first = self.node.args[0]
            for module in self.modules:
                branch = dict(env)
                branch[first] = branch[first].clone()
                branch[self.node] = module(*self._args(branch), **self._kwargs(branch))
                yield branch
            return
        for output in self.outputs(env):
            branch = dict(env)
            branch[self.node] = output
            yield branch

    def outputs(self, env: dict[fx.Node, Any]) -> Iterator[Any]:
        """The layer's output under each distinct config, in order."""

        args, kwargs = self._args(env), self._kwargs(env)
        if not self._split:
            for module in self.modules:
                yield module(*args, **kwargs)
            return
        spec, float_module = self._spec, self._float
        assert spec is not None and float_module is not None  # set with _split
        ops = spec.unpack(float_module, args, kwargs)
        if self._rows and ops.data_in is not None and not ops.args and not ops.kwargs:
            groups = self._exact_groups(ops)
            if groups is not None:
                yield from self._exact_outputs(ops, groups)
                return
        if self._stack and ops.data_in is not None and not ops.args and not ops.kwargs:
            yield from self._stacked_outputs(args, kwargs, ops)
            return
        inputs: dict[Any, Any] = {}
        plan = self._plan(ops)
        if plan is not None:
            # Parameters as operands (linear, conv): their quantized forms were resolved
            # once; per config there is only the input's format and the call.
            compute, data_in, rest, rest_kw = spec.compute, ops.data_in, ops.args, ops.kwargs
            for module, fmt, weight, bias in plan:
                if module is not None:
                    yield module(*args, **kwargs)
                else:
                    quantized = self._input(inputs, data_in, fmt)
                    yield compute(float_module, Operands(quantized, weight, bias, rest, rest_kw))
            return
        for i, module in enumerate(self.modules):
            if not isinstance(module, QuantizedLayer):
                yield module(*args, **kwargs)
                continue
            config = module.config
            weight = self._operand(i, module, "weight", ops.weight, config.weight)
            bias = self._operand(i, module, "bias", ops.bias, config.bias)
            data_in = self._input(inputs, ops.data_in, config.data_in)
            yield spec.compute(float_module, Operands(data_in, weight, bias, ops.args, ops.kwargs))

    def _plan(self, ops: Operands) -> list[tuple[Any, Any, Any, Any]] | None:
        """Per config: (float module or None, input format, weight, bias), for parameter operands.

        None when an operand is an activation (a matmul's second input), which is
        quantized afresh per call. Parameters do not change during one evaluation (it
        runs under inference mode), so the plan is made once per pair of parameters.
        """
        weight, bias = ops.weight, ops.bias
        if not all(t is None or isinstance(t, nn.Parameter) for t in (weight, bias)):
            return None
        held = self._planned
        if held is not None and held[0] is weight and held[1] is bias:
            return held[2]
        plan = []
        for i, module in enumerate(self.modules):
            if not isinstance(module, QuantizedLayer):
                plan.append((module, None, None, None))
                continue
            config = module.config
            plan.append(
                (
                    None,
                    config.data_in,
                    self._operand(i, module, "weight", weight, config.weight),
                    self._operand(i, module, "bias", bias, config.bias),
                )
            )
        self._planned = (weight, bias, plan)
        return plan

    def _exact_groups(self, ops: Operands) -> list[tuple[Any, list[int], Any, Any]] | None:
        """The configs whose sums are exact, grouped by input format, with their weights
        and biases concatenated.

        For a config whose sums are exact (:func:`_exact_sums`) the value of every output
        element is the exact sum whatever order a kernel adds in, so one call with the
        weights side by side gives each config's output to the bit (a call with a wider
        weight may use another kernel and another order; an exact sum does not care).
        The others (``self._alone``: e.g. 8-bit operands over thousands of inputs) run
        one call each. None when fewer than two configs are exact. Made once per pair of
        parameters, as :meth:`_plan`.
        """
        data_in, weight, bias = ops.data_in, ops.weight, ops.bias
        if data_in.device.type != "cpu" or data_in.dtype != torch.float32:
            return None  # accelerators may round matmul operands (TF32): stack rows there
        if not isinstance(weight, nn.Parameter) or not (bias is None or isinstance(bias, nn.Parameter)):
            return None
        held = self._grid
        if held is not None and held[0] is weight and held[1] is bias:
            return held[2]
        groups: list[tuple[Any, list[int], Any, Any]] | None = None
        terms = int(weight.shape[-1])
        members: dict[Any, list[int]] = {}
        exact = [
            i
            for i, m in enumerate(self.modules)
            if _exact_sums(terms, m.config.data_in, m.config.weight, m.config.bias, bias is not None)
        ]
        alone: list[int] = []
        if weight.dtype == torch.float32 and weight.dim() == 2 and len(exact) >= 2:
            for i in exact:
                members.setdefault(self.modules[i].config.data_in, []).append(i)
            alone = sorted(set(range(len(self.modules))) - set(exact))
            groups = []
            for fmt, indices in members.items():
                weights = [self._operand(i, self.modules[i], "weight", weight, self.modules[i].config.weight) for i in indices]
                biases = [self._operand(i, self.modules[i], "bias", bias, self.modules[i].config.bias) for i in indices]
                groups.append((fmt, indices, torch.cat(weights), None if bias is None else torch.cat(biases)))
        self._grid = (weight, bias, groups)
        self._alone = alone
        self._product = None if groups is None or alone else _Product.of(groups, len(self.modules))
        return groups

    def output_block(self, env: dict[fx.Node, Any], *, transposed: bool = False) -> _Block | None:
        """Every config's output stacked along a new first dimension, when sums are exact.

        The joined calls of :meth:`_exact_outputs` write straight into the block (no
        per-config tensors, no stacking afterwards); None when the layer cannot join its
        calls (then :meth:`outputs` gives them one by one). With ``transposed``, a layer
        with 2-D input gives ``(configs, outputs, samples)`` (see :class:`_Block`).
        """
        if not self._rows:
            return None
        ops = self._spec.unpack(self._float, self._args(env), self._kwargs(env))  # type: ignore[union-attr]
        if ops.data_in is None or ops.args or ops.kwargs:
            return None
        groups = self._exact_groups(ops)
        if groups is None:
            return None
        if transposed and ops.data_in.dim() == 2:
            return _Block(self._exact_block_t(ops, groups), transposed=True)
        return _Block(self._exact_block(ops, groups))

    def _exact_block(self, ops: Operands, groups: list[tuple[Any, list[int], Any, Any]]) -> torch.Tensor:
        """Every config's output in one tensor, one ``F.linear`` call per input format."""
        product = self._product
        if product is not None and ops.data_in.dim() == 2:
            return product.block(ops.data_in)
        block: torch.Tensor | None = None
        inputs: dict[Any, Any] = {}
        for fmt, indices, weight, bias in groups:
            joined = F.linear(self._input(inputs, ops.data_in, fmt), weight, bias)
            width = joined.shape[-1] // len(indices)
            # (..., configs, width) -> (configs, ..., width)
            apart = joined.view(*joined.shape[:-1], len(indices), width).movedim(-2, 0)
            if len(groups) == 1 and not self._alone:
                return apart.contiguous()
            if block is None:
                block = joined.new_empty((len(self.modules), *apart.shape[1:]))
            block[_as_slice(indices)] = apart
        assert block is not None  # groups is not empty: the layer has > 1 config
        for i in self._alone:
            block[i] = self._alone_output(ops, inputs, i)
        return block

    def _alone_output(self, ops: Operands, inputs: dict[Any, Any], i: int) -> torch.Tensor:
        """Config ``i``'s output from its own call, as :meth:`outputs` makes it."""
        module = self.modules[i]
        config = module.config
        weight = self._operand(i, module, "weight", ops.weight, config.weight)
        bias = self._operand(i, module, "bias", ops.bias, config.bias)
        data_in = self._input(inputs, ops.data_in, config.data_in)
        return self._spec.compute(self._float, Operands(data_in, weight, bias, ops.args, ops.kwargs))  # type: ignore[union-attr]

    def _exact_block_t(self, ops: Operands, groups: list[tuple[Any, list[int], Any, Any]]) -> torch.Tensor:
        """:meth:`_exact_block` as ``(configs, outputs, samples)``, for a 2-D input.

        The weights times the transposed input: with exact sums the product is the same
        in either orientation, and this one needs no copy to put each config's outputs
        apart (its rows are already ``(configs, outputs)``).
        """
        product = self._product
        if product is not None:
            return product.block_t(ops.data_in)
        block: torch.Tensor | None = None
        inputs: dict[Any, Any] = {}
        for fmt, indices, weight, bias in groups:
            joined = torch.matmul(weight, self._input(inputs, ops.data_in, fmt).t())
            if bias is not None:
                joined.add_(bias.unsqueeze(1))
            apart = joined.view(len(indices), -1, joined.shape[-1])
            if len(groups) == 1 and not self._alone:
                return apart
            if block is None:
                block = joined.new_empty((len(self.modules), *apart.shape[1:]))
            block[_as_slice(indices)] = apart
        assert block is not None  # groups is not empty: the layer has > 1 config
        for i in self._alone:
            block[i] = self._alone_output(ops, inputs, i).t()
        return block

    def _exact_outputs(self, ops: Operands, groups: list[tuple[Any, list[int], Any, Any]]) -> list[Any]:
        """Every config's output, one ``F.linear`` call per input format (exact sums)."""
        return list(self._exact_block(ops, groups))

    @staticmethod
    def _input(inputs: dict[Any, Any], data_in: Any, fmt: Any) -> Any:
        """The input quantized by ``fmt``, once per format (the same call on the same tensor)."""
        if fmt is None or data_in is None:
            return data_in
        quantized = inputs.get(fmt)
        if quantized is None:
            quantized = inputs[fmt] = fake_quantize(data_in, fmt)
        return quantized

    def _stacked_outputs(self, args: Any, kwargs: Any, ops: Operands) -> list[Any]:
        """The outputs of every config, with one layer call per weight (and bias) format.

        Configs that share their quantized weight and bias differ only in how the input is
        quantized: their inputs are stacked along dimension 0 (the samples) and go through
        the layer in one call, whose output is split back. Each sample's output of a
        linear or conv layer depends only on that sample, but the library may pick
        another kernel for a taller input, and a kernel may sum in another order: the
        first call of every new shape is therefore also computed one input at a time
        and compared bit for bit; on any difference the layer stops stacking (and uses
        the one-at-a-time results).
        """
        spec, float_module = self._spec, self._float
        assert spec is not None and float_module is not None
        outputs: list[Any] = [None] * len(self.modules)
        inputs: dict[Any, Any] = {}
        groups: dict[tuple[int, int], list[tuple[int, Any, Any, Any]]] = {}
        for i, module in enumerate(self.modules):
            if not isinstance(module, QuantizedLayer):
                outputs[i] = module(*args, **kwargs)
                continue
            config = module.config
            weight = self._operand(i, module, "weight", ops.weight, config.weight)
            bias = self._operand(i, module, "bias", ops.bias, config.bias)
            data_in = self._input(inputs, ops.data_in, config.data_in)
            groups.setdefault((id(weight), id(bias)), []).append((i, data_in, weight, bias))
        for members in groups.values():
            for part in _parts(members, self._stack_elements):
                self._run_stacked(part, outputs)
        return outputs

    def _run_stacked(self, members: list[tuple[int, Any, Any, Any]], outputs: list[Any]) -> None:
        spec, float_module = self._spec, self._float
        assert spec is not None and float_module is not None
        _, _, weight, bias = members[0]

        def one(data_in: Any) -> Any:
            return spec.compute(float_module, Operands(data_in, weight, bias))

        if len(members) == 1 or not self._stack:
            for i, data_in, _, _ in members:
                outputs[i] = one(data_in)
            return
        stacked = torch.cat([data_in for _, data_in, _, _ in members])
        pieces = one(stacked).split([int(data_in.shape[0]) for _, data_in, _, _ in members])
        key = (tuple(stacked.shape), stacked.dtype, tuple(weight.shape), None if bias is None else tuple(bias.shape))
        if key not in self._checked:
            reference = [one(data_in) for _, data_in, _, _ in members]
            if not all(_same_bits(a, b) for a, b in zip(pieces, reference)):
                self._stack = False
                pieces = reference
            self._checked.add(key)
        for (i, _, _, _), piece in zip(members, pieces):
            outputs[i] = piece

    def _operand(self, i: int, module: Any, role: str, tensor: Any, fmt: Any) -> Any:
        """A weight or bias as the wrapper's forward makes it, remembered for parameters.

        Parameters do not change during one exhaustive evaluation (it runs under
        inference mode), so the cache's answer for a parameter is the same tensor every
        time: it is asked once per config.
        """
        if fmt is None or tensor is None:
            return tensor
        if not isinstance(tensor, nn.Parameter):
            return module.cache.quantize(module.layer_name, role, tensor, fmt)
        key = (i, role)
        held = self._params.get(key)
        if held is None or held[0] is not tensor:
            held = self._params[key] = (tensor, module.cache.quantize(module.layer_name, role, tensor, fmt))
        return held[1]


@dataclass(frozen=True)
class _Product:
    """A layer whose configs are every input format times the same weights: one call for all.

    The input is quantized to every format at once (a leading dimension of formats, the
    same float32 operations as :meth:`IntegerFormat.quantize` elementwise: a multiply by
    ``2**f``, round, clamp to the format's codes, a multiply by ``2**-f``), and goes
    through one ``F.linear`` with the weights side by side (exact sums: any order).
    """

    scales: torch.Tensor
    inverses: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    per_format: int
    order: torch.Tensor | None

    @staticmethod
    def of(groups: list[tuple[Any, list[int], Any, Any]], count: int) -> _Product | None:
        """The product form of exact groups, or None when their weights differ."""
        _, first, weight, bias = groups[0]
        if len(groups) < 2 or any(
            len(ix) != len(first) or not torch.equal(w, weight) or (b is None) != (bias is None)
            or (b is not None and not torch.equal(b, bias))
            for _, ix, w, b in groups[1:]
        ):
            return None
        fmts = [fmt for fmt, _, _, _ in groups]
        position = [i for _, ix, _, _ in groups for i in ix]  # block row -> config
        order = None
        if position != list(range(count)):
            order = torch.empty(count, dtype=torch.long)
            order[torch.tensor(position)] = torch.arange(count)  # config -> block row
        shape = (len(fmts), 1, 1)
        return _Product(
            torch.tensor([fmt._scale32[0] for fmt in fmts], dtype=torch.float32).view(shape),
            torch.tensor([fmt._scale32[1] for fmt in fmts], dtype=torch.float32).view(shape),
            torch.tensor([fmt._levels[0] for fmt in fmts], dtype=torch.float32).view(shape),
            torch.tensor([fmt._levels[1] for fmt in fmts], dtype=torch.float32).view(shape),
            weight,
            bias,
            len(first),
            order,
        )

    def block(self, x: torch.Tensor) -> torch.Tensor:
        """Every config's output, ``(configs, samples, outputs)``, in the layer's config order."""
        # Every format's codes clamped at once (small integers: exact in float32).
        codes = (x.unsqueeze(0) * self.scales).round_().clamp_(self.low, self.high)
        joined = F.linear(codes.mul_(self.inverses), self.weight, self.bias)
        formats, n, width = joined.shape
        per_config = width // self.per_format
        # (formats, samples, weights, outputs) -> (formats x weights, samples, outputs)
        rows = joined.view(formats, n, self.per_format, per_config).transpose(1, 2).reshape(-1, n, per_config)
        return rows if self.order is None else rows.index_select(0, self.order)

    def block_t(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`block` as ``(configs, outputs, samples)``: the weights times the
        transposed input (exact sums: the same values), rows already in config order."""
        codes = (x.t().unsqueeze(0) * self.scales).round_().clamp_(self.low, self.high)
        joined = torch.matmul(self.weight, codes.mul_(self.inverses))
        if self.bias is not None:
            joined.add_(self.bias.unsqueeze(1))
        formats, width, n = joined.shape
        # (formats, weights x outputs, samples) -> (formats x weights, outputs, samples): a view.
        rows = joined.view(formats * self.per_format, width // self.per_format, n)
        return rows if self.order is None else rows.index_select(0, self.order)


def _as_slice(indices: list[int]) -> slice | list[int]:
    """Evenly spaced indices as a slice (a plain strided copy instead of an index_put)."""
    if len(indices) == 1:
        return slice(indices[0], indices[0] + 1)
    step = indices[1] - indices[0]
    if step > 0 and all(b - a == step for a, b in zip(indices, indices[1:])):
        return slice(indices[0], indices[-1] + 1, step)
    return indices


def _exact_sums(terms: int, data_in: Any, weight: Any, bias: Any, has_bias: bool) -> bool:
    """Whether every partial sum of a linear layer is exact in float32, in any order.

    With the input and the weight on fixed-point grids (integer codes times ``2**-f``),
    each product is an integer multiple of ``2**-(f_in + f_w)``, and with a quantized
    bias the whole output is a multiple of ``u = 2**-max(f_in + f_w, f_b)``. When the
    sum of every term's largest magnitude is at most ``2**24 u``, every partial sum (of
    any subset, in any order, with or without fused multiply-adds) is such a multiple
    below ``2**24 u``: a float32 holds it exactly, so no addition rounds and every
    summation order gives the same value (up to the sign of an exact zero, which no
    later operation of a classifier's evaluation tells apart). The bound is the one the
    quantized layers use to fold the input's scale into the weights
    (:func:`bitscout.quant.exact_sum_terms`).

    Args:
        terms: Products summed per output (the weight's input features).
        data_in, weight, bias: The formats of the operands (None: float).
        has_bias: Whether the layer has a bias (then it must be quantized too).
    """
    limits = exact_sum_terms(data_in, weight, bias if has_bias else None)
    return limits is not None and terms <= limits[0 if has_bias else 1]


def _parts(members: list[Any], limit: int) -> Iterator[list[Any]]:
    """``members`` cut into runs whose inputs hold at most ``limit`` elements together."""
    part: list[Any] = []
    held = 0
    for member in members:
        numel = member[1].numel()
        if part and held + numel > limit:
            yield part
            part, held = [], 0
        part.append(member)
        held += numel
    if part:
        yield part


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality (NaN payloads and the sign of zero included)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point():
        view = {2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
        return torch.equal(a.contiguous().view(view), b.contiguous().view(view))
    return torch.equal(a, b)


def _resolver(value: Any) -> Callable[[dict[fx.Node, Any]], Any]:
    """A function env -> ``value`` with every node replaced by its computed value."""
    return lambda env: fx.node.map_arg(value, env.__getitem__)


def _node_runner(gm: fx.GraphModule, node: fx.Node) -> Callable[[dict[fx.Node, Any]], Any]:
    args = _resolver(node.args)
    kwargs = _resolver(node.kwargs)
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        return lambda env: module(*args(env), **kwargs(env))
    if node.op == "call_function":
        fn = node.target
        return lambda env: fn(*args(env), **kwargs(env))  # type: ignore[operator]
    if node.op == "call_method":
        method = str(node.target)

        def call_method(env: dict[fx.Node, Any]) -> Any:
            self_obj, *rest = args(env)
            return getattr(self_obj, method)(*rest, **kwargs(env))

        return call_method
    if node.op == "get_attr":
        value = _fetch_attr(gm, str(node.target))
        return lambda env: value
    raise SearchError(f"exhaustive evaluation cannot run the graph node {node.name!r} (op {node.op!r})")


_INPLACE_OPERATORS = frozenset(
    getattr(operator, name)
    for name in ("iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand", "ior", "ixor", "ilshift", "irshift", "imatmul")
)


def _is_inplace(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether a node may write into its first argument (``relu(inplace=True)``, ``x += y``)."""
    if node.kwargs.get("inplace"):
        return True
    if node.op == "call_module":
        return bool(getattr(gm.get_submodule(str(node.target)), "inplace", False))
    if node.op == "call_method":
        return str(node.target).endswith("_")
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return node.target in _INPLACE_OPERATORS or (name.endswith("_") and not name.startswith("_"))
    return False


def _cloning_first_arg(run: Callable[[dict[fx.Node, Any]], Any], node: fx.Node) -> Callable[[dict[fx.Node, Any]], Any]:
    """``run`` on a private copy of the node's first argument.

    The in-place op writes into the copy, which replaces the value in this branch's
    environment (later nodes of the branch see the write, as in the model) while
    sibling branches keep the original.
    """
    first = node.args[0]

    def run_on_copy(env: dict[fx.Node, Any]) -> Any:
        env[first] = env[first].clone()
        return run(env)

    return run_on_copy


def _fetch_attr(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


class _Plan:
    """The traced graph cut at its quantizable layers, ready to walk depth first.

    ``segments[k]`` are the nodes run before layer ``k`` (``segments[L]``: after the
    last layer, up to the output); ``layers[k]`` branches over layer ``k``'s distinct
    configurations.
    """

    def __init__(
        self, traced: TracedModel, space: SearchSpace, quantizer: Quantizer, *, stack_elements: int = 0
    ) -> None:
        gm = traced.gm
        nodes = list(gm.graph.nodes)
        position = {node: i for i, node in enumerate(nodes)}
        last_use: dict[fx.Node, int] = {}
        for node in nodes:
            for used in node.all_input_nodes:
                last_use[used] = position[node]
        dead_after: dict[int, list[fx.Node]] = {}
        for node, pos in last_use.items():
            dead_after.setdefault(pos, []).append(node)

        by_name = {layer.name: layer for layer in space.layers}
        placeholders = [n for n in nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise SearchError(
                f"exhaustive evaluation needs a model with one input; this one takes "
                f"{len(placeholders)} ({', '.join(n.name for n in placeholders)})"
            )
        self.input = placeholders[0]
        outputs = [n for n in nodes if n.op == "output"]
        out_arg = outputs[0].args[0]
        if not isinstance(out_arg, fx.Node):
            raise SearchError(
                "exhaustive evaluation needs a model that returns one tensor of logits; this "
                f"one returns {type(out_arg).__name__}"
            )
        self.output = out_arg

        self.segments: list[list[_Step]] = [[]]
        self.layers: list[_Layer] = []
        seen: set[str] = set()
        # level[v]: the depth of the walk at which v is computed. A value of a lower
        # level than the node reading it is shared by sibling branches, and an in-place
        # op must not write into it.
        level: dict[fx.Node, int] = {self.input: 0}
        for node in nodes:
            drop = tuple(dead_after.get(position[node], ()))
            if node.op in ("placeholder", "output"):
                continue
            depth = len(self.layers)
            first = node.args[0] if node.args and isinstance(node.args[0], fx.Node) else None
            shared = first is not None and level.get(first, 0) < depth
            name = str(node.target) if node.op == "call_module" else None
            if name is not None and name in by_name:
                choices = by_name[name]
                modules = []
                for rep in choices.representatives:
                    cfg = choices.configs[rep]
                    if cfg is None:
                        modules.append(gm.get_submodule(name))
                    else:
                        modules.append(quantizer.build({name: cfg})._modules[name])
                inplace = _is_inplace(gm, node) or any(
                    getattr(getattr(m, "float_module", None), "inplace", False) for m in modules
                )
                self.layers.append(
                    _Layer(
                        node,
                        name,
                        modules,
                        drop,
                        copy_input=inplace and (shared or len(modules) > 1),
                        stack_elements=stack_elements,
                    )
                )
                self.segments.append([])
                level[node] = depth + 1
                seen.add(name)
            else:
                run = _node_runner(gm, node)
                if first is not None and shared and _is_inplace(gm, node):
                    run = _cloning_first_arg(run, node)
                self.segments[-1].append(_Step(node, run, drop))
                level[node] = depth
        missing = [name for name in by_name if name not in seen]
        if missing:
            raise SearchError(
                f"exhaustive evaluation: the layers {', '.join(missing)} of the search space "
                "are not top-level module calls of the traced graph"
            )
        if [layer.name for layer in self.layers] != [layer.name for layer in space.layers]:
            raise SearchError(
                "exhaustive evaluation: the graph calls the layers in another order than the "
                "search space lists them: "
                f"{[layer.name for layer in self.layers]} vs {[layer.name for layer in space.layers]}"
            )
        self.sizes = tuple(len(layer) for layer in self.layers)
        # The last layer's output is the model's output: its configs go straight to the
        # leaf block, without a branch environment each.
        self.direct_output = (
            bool(self.layers)
            and not self.segments[-1]
            and self.output is self.layers[-1].node
            and not self.layers[-1].copy_input
        )


def _run_segment(steps: Sequence[_Step], env: dict[fx.Node, Any]) -> None:
    for step in steps:
        env[step.node] = step.run(env)
        for dead in step.drop:
            env.pop(dead, None)


class _Block:
    """Outputs of consecutive configurations, stacked along dimension 0 (a leaf's sink entry).

    ``values`` is ``(configs, samples, outputs)``, or with ``transposed``
    ``(configs, outputs, samples)``: the layout in which a class's logits of every sample
    are contiguous, which the scoring reads fastest.
    """

    __slots__ = ("values", "transposed")

    def __init__(self, values: torch.Tensor, *, transposed: bool = False) -> None:
        self.values = values
        self.transposed = transposed

    def rows(self) -> torch.Tensor:
        """``(configs, samples, outputs)`` (a view when transposed)."""
        return self.values.transpose(1, 2) if self.transposed else self.values


class _Walker:
    """Depth-first walk of one chunk of samples; leaf blocks are scored by ``score``."""

    def __init__(
        self,
        plan: _Plan,
        block_level: int,
        score: Callable[[int, list[Any]], None],
        *,
        transposed: bool = False,
    ) -> None:
        self.plan = plan
        self.block_level = block_level
        self.score = score
        self.calls = 0
        # Whether the last layer's joined calls give transposed blocks (see _Block).
        self.transposed = transposed

    def run(self, x: torch.Tensor) -> None:
        env: dict[fx.Node, Any] = {self.plan.input: x}
        self._descend(0, env, 0, None)

    def _descend(self, k: int, env: dict[fx.Node, Any], prefix: int, sink: list[torch.Tensor] | None) -> None:
        plan = self.plan
        own_sink = sink is None and k == self.block_level
        if own_sink:
            sink = []
        _run_segment(plan.segments[k], env)
        if k == len(plan.layers):
            assert sink is not None  # block_level <= number of layers
            sink.append(env[plan.output])
        elif k == len(plan.layers) - 1 and plan.direct_output:
            assert sink is not None
            block = plan.layers[k].output_block(env, transposed=self.transposed)
            if block is not None:
                sink.append(block)
            else:
                sink.extend(plan.layers[k].outputs(env))
            self.calls += len(plan.layers[k])
        else:
            layer = plan.layers[k]
            for pos, branch in enumerate(layer.branches(env)):
                self.calls += 1
                for dead in layer.drop:
                    branch.pop(dead, None)
                self._descend(k + 1, branch, prefix * len(layer) + pos, sink)
        if own_sink:
            assert sink is not None
            self.score(prefix, sink)


# ----- metrics ----------------------------------------------------------------------------


#: Most configurations x samples whose hit counts are made in one product (bounds the
#: memory of the pending booleans and of their float copy: 4 Mi elements, 16 MiB).
_HITS_ELEMENTS = 1 << 22

class _Scores:
    """Per-configuration accumulators, combined over chunks exactly as ``evaluate`` does.

    The leaf blocks come class by class where the last layer can give them so
    (:class:`_Block`): whether each sample is classified correctly is then read from
    class maxima instead of an ``argmax`` per row, and the cross-entropy is
    :func:`bitscout.training.cross_entropy_sums` of the block as it is. With
    ``loss=False`` the cross-entropy is not computed (``finish`` gives None for it).
    """

    def __init__(self, count: int, num_classes: int, block: int, y: torch.Tensor, *, loss: bool = True) -> None:
        self.count = count
        self.num_classes = num_classes
        self.block = block
        self.loss = loss
        self.correct = np.zeros(count, dtype=np.int64)
        self.hits = np.zeros((count, num_classes), dtype=np.int64)
        self.loss_sum = np.zeros(count, dtype=np.float64)
        self.y = y
        self.target: torch.Tensor = y
        # Whether each sample was right, per configuration, of blocks not counted yet.
        self._right: list[torch.Tensor] = []
        self._right_start = 0
        self._right_count = 0
        # Set per chunk of samples (set_chunk).
        self._one_hot = torch.empty(0)
        self._earlier = torch.empty(0)
        self._positions = torch.empty(0, dtype=torch.long)

    def set_chunk(self, target: torch.Tensor) -> None:
        self.flush()
        self.target = target
        c = self.num_classes
        # Hit counts per class are a product with the one-hot labels: sums of ones, exact
        # in float32 up to 2**24 samples a chunk (float64 beyond).
        exact = torch.float32 if target.shape[0] <= 1 << 24 else torch.float64
        self._one_hot = F.one_hot(target, c).to(exact)
        # _earlier[k, i]: 0 where class k comes before sample i's label, else -inf (added
        # to finite logits, it leaves the classes that argmax would take before the label).
        below = torch.arange(c, device=target.device).unsqueeze(1) < target.unsqueeze(0)
        self._earlier = torch.zeros(below.shape, device=target.device).masked_fill_(~below, float("-inf"))
        # Where each sample's label logit lies in a (classes x samples) plane read flat: an
        # index_select there costs a third of a gather along the classes.
        n = target.shape[0]
        self._positions = target * n + torch.arange(n, device=target.device)

    def __call__(self, prefix: int, outputs: list[Any]) -> None:
        start = prefix * self.block
        c = self.num_classes
        target = self.target
        # The sink holds one block per joined layer call (_Block), or one tensor per config.
        if all(isinstance(out, _Block) and out.transposed for out in outputs):
            columns = [out.values for out in outputs]
            by_class = columns[0] if len(columns) == 1 else torch.cat(columns)
            self._check_shape(by_class.shape[0], by_class.shape[2], by_class.shape[1])
            # Every sample's largest logit and its label's: exact, shared by both scores.
            top = by_class.amax(dim=1)
            own = by_class.flatten(1).index_select(1, self._positions)
            if self.loss:
                self._add_losses(start, class_major(by_class, transposed=True), top.cpu(), own.cpu())
            correct = self._correct_by_class(by_class, top, own)
        else:
            if all(isinstance(out, _Block) and not out.transposed for out in outputs):
                blocks = [out.values for out in outputs]
                logits = blocks[0] if len(blocks) == 1 else torch.cat(blocks)
            else:
                logits = torch.stack([v for out in outputs for v in (out.rows() if isinstance(out, _Block) else [out])])
            if logits.dim() != 3:
                raise DataError(
                    f"the model gives outputs of shape {tuple(logits.shape[1:])} for "
                    f"{target.shape[0]} samples; exhaustive evaluation needs logits of shape "
                    f"(samples, {c})"
                )
            self._check_shape(*logits.shape)
            if self.loss:
                self._add_losses(start, class_major(logits))
            correct = logits.argmax(dim=-1) == target
        # Blocks arrive in index order: their hit counts are made for many at once.
        if self._right and self._right_start + self._right_count != start:
            self._count_hits()
        if not self._right:
            self._right_start = start
        self._right.append(correct)
        self._right_count += correct.shape[0]
        if self._right_count * correct.shape[1] >= _HITS_ELEMENTS:
            self._count_hits()

    def _count_hits(self) -> None:
        """Hit counts per class of the pending blocks: a product with the one-hot labels."""
        if not self._right:
            return
        correct = self._right[0] if len(self._right) == 1 else torch.cat(self._right)
        start, stop = self._right_start, self._right_start + self._right_count
        hits = torch.matmul(correct.to(self._one_hot.dtype), self._one_hot).long()
        self.correct[start:stop] += hits.sum(dim=1).cpu().numpy()
        self.hits[start:stop] += hits.cpu().numpy()
        self._right.clear()
        self._right_count = 0

    def _check_shape(self, configs: int, samples: int, width: int) -> None:
        if width != self.num_classes or samples != self.target.shape[0]:
            raise DataError(
                f"the model gives outputs of shape {(samples, width)} for "
                f"{self.target.shape[0]} samples; exhaustive evaluation needs logits of shape "
                f"(samples, {self.num_classes})"
            )

    def _correct_by_class(self, by_class: torch.Tensor, top: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """``argmax(dim=1) == target`` of ``(configs, classes, samples)`` logits, from
        their maxima over the classes (``top``) and their labels' logits (``own``).

        ``argmax`` takes the first maximum: a sample is right when its label's logit is
        the maximum and no earlier class reaches it. Both maxima are reductions across
        the class rows, contiguous per class, which the CPU vectorises over the samples
        (an ``argmax`` over that dimension is not). Non-finite logits (NaN, whose first
        occurrence ``argmax`` takes) use ``argmax`` itself.
        """
        # A sum is finite only when every maximum is (NaN and inf propagate; a finite
        # sum that overflows only sends a block to the slower, equally exact argmax).
        if not math.isfinite(float(top.sum())):
            return by_class.argmax(dim=1) == self.target
        earlier = (by_class + self._earlier).amax(dim=1)
        return (own == top) & (earlier < top)

    def _add_losses(
        self, start: int, by_class: torch.Tensor, top: torch.Tensor | None = None, own: torch.Tensor | None = None
    ) -> None:
        """Adds the chunk's loss sums of ``(configs, classes, samples)`` CPU logits, as
        evaluate() scores each configuration's (the same bits: see bitscout.training's
        scores), in float64 in chunk order. ``top`` and ``own``: the maxima over the
        classes and the labels' logits, when already taken."""
        if top is None or own is None:
            top = by_class.amax(dim=1)
            own = by_class.gather(1, self.target.cpu().view(1, 1, -1).expand(by_class.shape[0], 1, -1)).squeeze(1)
        # Taken from the block before class_major made half precision float32 (exactly).
        sums = cross_entropy_sums(by_class, top.to(by_class.dtype), own.to(by_class.dtype))
        self.loss_sum[start : start + sums.shape[0]] += sums

    def flush(self) -> None:
        """Counts the pending hits (blocks arrive in index order, so they are one range)."""
        self._count_hits()

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        self.flush()
        n = int(self.y.shape[0])
        support = torch.bincount(self.y.cpu(), minlength=self.num_classes)
        present = support > 0
        hits = torch.from_numpy(self.hits)[:, present].double()
        # Row means: the same reduction evaluate() runs on one row (checked by the tests).
        balanced = (hits / support[present].double()).mean(dim=1).numpy()
        accuracy = self.correct.astype(np.float64) / n
        loss = self.loss_sum / n if self.loss else None
        return accuracy, balanced, loss


def _block_level(sizes: Sequence[int], per_output: int, block_elements: int) -> int:
    """The shallowest layer whose whole subtree of outputs fits one leaf block."""
    level = len(sizes)
    while level > 0 and math.prod(sizes[level - 1 :]) * per_output <= block_elements:
        level -= 1
    return level


def _all_configs(space: SearchSpace) -> Iterator[dict[str, LayerQuantConfig | None]]:
    """Every distinct configuration, in distinct-index order."""
    per_layer = [[(layer.name, layer.configs[r]) for r in layer.representatives] for layer in space.layers]
    for combo in itertools.product(*per_layer):
        yield dict(combo)


def evaluate_exhaustively(
    traced: TracedModel,
    space: SearchSpace,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    quantizer: Quantizer | None = None,
    num_classes: int | None = None,
    batch_size: int | None = None,
    hardware: Sequence[Runner] = (),
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
    stack_elements: int | None = None,
    loss: bool = True,
) -> ExhaustiveResult:
    """Evaluate every distinct configuration of ``space`` on the samples ``(x, y)``.

    The metrics are those of :func:`bitscout.training.evaluate` on the candidate that
    ``quantizer.build(config)`` makes, bit for bit, for every configuration.

    Args:
        traced: The traced float model (in eval mode for the duration of the call).
        space: The search space over ``traced``'s layer table.
        x: The samples, on the model's device.
        y: Their labels (int64), on the same device.
        quantizer: Builds the quantized layers (a new one by default; pass the search's
            to share its quantized-weight cache).
        num_classes: Classes of the task (default: the width of the logits).
        batch_size: Samples per forward pass, as ``evaluate``'s ``batch_size`` (None: all
            at once). The same chunking gives the same bits.
        hardware: Hardware runners computed from the config alone (their ``run`` must
            not build the model); each is run once per configuration.
        block_elements: Most logits (configurations x samples x classes) scored in one
            batched pass; bounds the memory of a leaf block.
        stack_elements: Most input elements stacked into one call of a linear or conv
            layer (the inputs of configs that share the layer's weight format); 0 runs
            every config's call on its own. None: :data:`DEFAULT_STACK_ELEMENTS` on an
            accelerator, where a call costs a kernel launch, and 0 on the CPU, where a
            taller input costs as much per row (measured: stacking 6 inputs of 540 rows
            into one linear call was slower than 6 calls).
        loss: Whether to compute the cross-entropy. Without it (``result.loss`` is
            None) the scoring skips the ``exp`` of every logit and its sums.

    Returns:
        Every configuration's metrics, in distinct-index order.

    Raises:
        SearchError: The graph cannot be walked (more than one input, an output that is
            not one tensor, layers called out of the space's order).
        DataError: No samples, ``x`` and ``y`` of different lengths, logits of another
            width than ``num_classes``, or labels outside ``0..num_classes-1``.
    """
    started = time.perf_counter()
    n = int(y.shape[0])
    if n == 0:
        raise DataError("cannot evaluate on 0 samples")
    if int(x.shape[0]) != n:
        raise DataError(f"x has {x.shape[0]} samples but y has {n} labels")
    if batch_size is not None and batch_size < 1:
        raise DataError(f"batch_size must be >= 1; got {batch_size}")
    quantizer = quantizer if quantizer is not None else Quantizer(traced)
    if stack_elements is None:
        stack_elements = 0 if x.device.type == "cpu" else DEFAULT_STACK_ELEMENTS
    plan = _Plan(traced, space, quantizer, stack_elements=stack_elements)
    y = y.to(dtype=torch.long)
    gm = traced.gm
    flags = [(m, m.training) for m in gm.modules()]
    gm.eval()
    try:
        with torch.inference_mode():
            # One float pass over a sample tells the number of classes.
            width = int(gm(x[:1]).shape[-1])
            classes = width if num_classes is None else num_classes
            if width != classes:
                raise DataError(
                    f"the model gives {width} outputs per sample but the data has {classes} classes"
                )
            low, high = int(y.min()), int(y.max())
            if low < 0 or high >= classes:
                raise DataError(f"labels must lie in 0..{classes - 1}; got labels from {low} to {high}")
            step = n if batch_size is None else batch_size
            level = _block_level(plan.sizes, min(step, n) * classes, block_elements)
            if plan.direct_output:
                level = min(level, len(plan.sizes) - 1)
            block = math.prod(plan.sizes[level:])
            count = math.prod(plan.sizes)
            scores = _Scores(count, classes, block, y, loss=loss)
            walker = _Walker(plan, level, scores, transposed=True)
            for start in range(0, n, step):
                scores.set_chunk(y[start : start + step])
                walker.run(x[start : start + step])
            accuracy, balanced, loss = scores.finish()
    finally:
        for module, training in flags:
            module.training = training
    hardware_values = _hardware_metrics(space, hardware) if hardware else {}
    return ExhaustiveResult(
        space=space,
        accuracy=accuracy,
        balanced_accuracy=balanced,
        loss=loss,
        hardware=hardware_values,
        num_samples=n,
        seconds=time.perf_counter() - started,
        forward_calls=walker.calls,
    )


class _ConfigOnly:
    """What an analytic hardware runner reads of a candidate: its config and context.

    Cheaper than a :class:`~bitscout.metrics.Candidate` (no validation, no lock), which
    matters at tens of thousands of configurations. A runner that asks for the model
    gets an AttributeError; :func:`exhaustive_support` refuses such runners first.
    """

    __slots__ = ("config", "context")

    def __init__(self, config: Mapping[str, Any], context: Any) -> None:
        self.config = config
        self.context = context


def _hardware_metrics(space: SearchSpace, runners: Sequence[Runner]) -> dict[str, np.ndarray]:
    count = space.distinct_size
    out: dict[str, np.ndarray] = {}
    grid = [(layer.name, [layer.configs[r] for r in layer.representatives]) for layer in space.layers]
    first = {name: configs[0] for name, configs in grid}
    configs: list[dict[str, Any]] | None = None
    for runner in runners:
        probe = Candidate(first, runner.context)
        runner.run(probe)
        if probe.is_built:
            raise SearchError(
                f"the hardware runner {runner.name!r} builds the model to measure it; "
                "exhaustive evaluation supports only runners computed from the config"
            )
        names = runner.produces()
        run_grid = getattr(runner, "run_grid", None)
        if run_grid is not None:
            # The analytic runners compute the whole grid with array arithmetic that
            # repeats run()'s operations in run()'s order: the same bits, no loop.
            values = run_grid(grid)
            for name in names:
                out[name] = np.ascontiguousarray(values[name], dtype=np.float64)
            continue
        if configs is None:
            configs = list(_all_configs(space))
        table = np.empty((count, len(names)), dtype=np.float64)
        context = runner.context
        for i, config in enumerate(configs):
            values = runner.run(_ConfigOnly(config, context))  # type: ignore[arg-type]
            table[i] = [values[name] for name in names]
        for j, name in enumerate(names):
            out[name] = np.ascontiguousarray(table[:, j])
    return out


def evaluate_runner_set_exhaustively(
    space: SearchSpace,
    runners: RunnerSet,
    *,
    block_elements: int = DEFAULT_BLOCK_ELEMENTS,
    stack_elements: int | None = None,
    loss: bool = True,
) -> ExhaustiveResult:
    """:func:`evaluate_exhaustively` with the samples and options of a runner set.

    Uses the ``basic_evaluation`` runner's split, number of samples and chunking, the
    context's quantizer (and its weight cache) and every hardware runner, so that the
    result equals ``runners.run(config)`` for every configuration.

    Raises:
        SearchError: The runner set is not supported (see :func:`exhaustive_support`).
    """
    reason = exhaustive_support(runners)
    if reason is not None:
        raise SearchError(f"cannot evaluate this search exhaustively: {reason}")
    context = runners.context
    evaluation = runners.software[0]
    split = context.dataset.split(evaluation.options.data_loader)
    n = evaluation.num_samples
    x = split.x[:n].to(context.device)
    y = split.y[:n].to(context.device)
    chunk = _chunk_size(context, n)
    return evaluate_exhaustively(
        context.traced,
        space,
        x,
        y,
        quantizer=context.quantizer,
        num_classes=context.dataset.info.num_classes,
        batch_size=None if chunk >= n else chunk,
        hardware=runners.hardware,
        block_elements=block_elements,
        stack_elements=stack_elements,
        loss=loss,
    )
