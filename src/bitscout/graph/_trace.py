"""Trace a model once with torch.fx and rewrite it so that layers can be swapped cheaply."""

from __future__ import annotations

import functools
import inspect
import itertools
import linecache
import math
import os
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from bitscout.errors import BitscoutWarning, TraceError
from bitscout.graph._attention import TRACE_INTO_NAMES, traceable_view
from bitscout.graph._ops import QUANTIZABLE_FUNCTIONS, QUANTIZABLE_MODULES, FloatOp
from bitscout.graph._table import LayerInfo, LayerTable

__all__ = ["FloatModule", "TraceCoverageWarning", "TracedModel", "trace"]

ExampleInput = torch.Tensor | tuple[torch.Tensor, ...]

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_THIS_DIR = os.path.dirname(__file__) + os.sep

# Keyword names of the operands of quantizable functions, by position: data_in, weight, bias.
_OPERAND_KWARGS: Mapping[str, tuple[str, ...]] = {
    "linear": ("input", "weight", "bias"),
    "matmul": ("input", "other"),
    "bmm": ("input", "mat2"),
    "add": ("input", "other"),
    "mul": ("input", "other"),
    "relu": ("input",),
}


class TraceCoverageWarning(BitscoutWarning):
    """Parameters of the model live in modules bitscout does not quantize."""


@dataclass(frozen=True)
class FloatModule:
    """A module (or parameter) whose parameters stay in float in every candidate.

    Attributes:
        path: Its attribute path in the model (``"encoder"``, ``"cls_token"``).
        kind: Its class name (``"TransformerEncoder"``), or ``"parameter"``.
        params: How many parameters it holds.
    """

    path: str
    kind: str
    params: int


@dataclass
class TracedModel:
    """A model traced once, ready for cheap candidate builds.

    Attributes:
        gm: The traced module. Every quantizable node is a ``call_module`` whose target
            is a top-level attribute named after the node (``gm.seq_blocks_2``);
            function calls are held by :class:`~bitscout.graph.FloatOp` modules. Its
            parameters are the user's model's own tensors (shared, not copied).
        table: The layer table.
        example_input: The input the shapes were computed from.
        float_modules: The modules run in the graph whose parameters no quantizable
            layer holds (largest first); normalization layers are left out (they stay
            in float by design, or are folded into the layer before them).
    """

    gm: fx.GraphModule
    table: LayerTable
    example_input: ExampleInput
    float_modules: tuple[FloatModule, ...] = ()

    @property
    def float_share(self) -> float:
        """The share of the model's parameters in :attr:`float_modules`."""
        total = self.table.param_count
        return sum(m.params for m in self.float_modules) / total if total else 0.0

    def coverage_warning(self) -> str | None:
        """A sentence on the parameters left in float, or None when there are none."""
        if not self.float_modules:
            return None
        held = sum(m.params for m in self.float_modules)
        shown = ", ".join(f"{m.path} ({m.kind}, {m.params:,})" for m in self.float_modules[:5])
        more = f" and {len(self.float_modules) - 5} more" if len(self.float_modules) > 5 else ""
        text = (
            f"{self.float_share:.1%} of the model's {self.table.param_count:,} parameters "
            f"({held:,}) stay in float in every candidate: they are in modules bitscout does "
            f"not quantize: {shown}{more}"
        )
        into = sorted({m.kind for m in self.float_modules} & set(TRACE_INTO_NAMES))
        if into:
            text += (
                f". To quantize the layers inside, set trace_into = {_toml_list(into)} in the "
                "config (trace_into= in Python)"
            )
        return text


def _toml_list(names: list[str]) -> str:
    return "[" + ", ".join(f'"{name}"' for name in names) + "]"


def trace(
    model: nn.Module,
    example_input: ExampleInput,
    *,
    modules: Mapping[type[nn.Module], str] = QUANTIZABLE_MODULES,
    functions: Mapping[Callable[..., Any], str] = QUANTIZABLE_FUNCTIONS,
    trace_into: Sequence[str] = (),
    warn: bool = True,
) -> TracedModel:
    """Trace ``model`` with torch.fx and build its layer table.

    The model is not modified: the traced module refers to the model's own submodules
    and parameters. Shapes come from one run of the example input (a batch; shapes in
    the table drop its first dimension); FLOPs from one run on its first sample, made
    the first time ``table.float_flops`` is read. Both run under ``torch.no_grad`` with
    every submodule briefly in eval mode, so that BatchNorm statistics are not updated
    (the training flags are restored).

    Args:
        model: The float model.
        example_input: A batch of inputs (or a tuple of them, one per ``forward``
            argument).
        modules: Module types to treat as quantizable (exact type) and their op type.
        functions: Functions to treat as quantizable and their op type.
        trace_into: torch modules to trace into (:data:`TRACE_INTO_NAMES`, e.g.
            ``"TransformerEncoderLayer"``) instead of keeping them as one float leaf:
            see :func:`traceable_view`.
        warn: Warn (:class:`TraceCoverageWarning`) when parameters stay in float
            because no quantizable layer holds them.

    ``forward`` arguments beyond those the example input gives are fixed to their
    defaults while tracing (``attention_mask=None``); one without a default is an error.

    Returns:
        The traced model and its layer table.

    Raises:
        TraceError: torch.fx cannot trace the model (the message names the module and
            the line of its ``forward`` that broke the trace, and the arguments fixed to
            their defaults), or the traced model fails on the example input.
    """
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    model = traceable_view(model, trace_into) if trace_into else model
    concrete = _defaults_beyond(model, len(args))
    tracer = _ScopeTracer()
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as exc:  # any failure inside fx means "cannot be traced"
        raise TraceError(_trace_failure_message(model, tracer, exc, concrete)) from exc
    gm = fx.GraphModule(tracer.root, graph, type(model).__name__)

    with _eval_mode(model), torch.no_grad():
        try:
            shapes = _ShapeRecorder(gm).shapes_of(*args)
        except Exception as exc:
            given = ", ".join(str(tuple(a.shape)) for a in args)
            # torch.fx appends the graph node and a tlparse hint on further lines: the
            # first line is the user's error.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TraceError(
                f"{type(model).__name__} was traced, but running it on the example input "
                f"(shape {given}) failed: {first}. Give an example input the model accepts "
                "(a batch of samples with the dataset's input shape)."
            ) from exc

    float_modules = _float_modules(model, gm, modules, functions)
    depends_on_input = _input_dependent_nodes(gm.graph)
    quantizable: list[tuple[fx.Node, LayerInfo]] = []
    for node in gm.graph.nodes:
        info = _layer_info(gm, node, modules, functions, shapes, depends_on_input)
        if info is not None:
            quantizable.append((node, info))

    _rewrite(gm, quantizable)
    table = LayerTable(
        tuple(info for _, info in quantizable),
        float_flops=functools.partial(_count_flops, model, gm, tuple(a[:1] for a in args)),
        param_count=sum(p.numel() for p in model.parameters()),
        buffer_count=sum(b.numel() for b in model.buffers()),
        buffer_float_count=sum(b.numel() for b in model.buffers() if b.is_floating_point()),
    )
    traced = TracedModel(gm=gm, table=table, example_input=example_input, float_modules=float_modules)
    message = traced.coverage_warning()
    if warn and message is not None:
        warnings.warn(TraceCoverageWarning(f"{type(model).__name__}: {message}"), stacklevel=2)
    return traced


def _defaults_beyond(model: nn.Module, given: int) -> dict[str, Any]:
    """``forward``'s arguments after the first ``given``, fixed to their defaults.

    Raises:
        TraceError: One of them has no default (the example input must give it).
    """
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return {}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    concrete: dict[str, Any] = {}
    for param in positional[given:]:
        if param.default is inspect.Parameter.empty:
            names = ", ".join(p.name for p in positional)
            raise TraceError(
                f"{type(model).__name__}.forward({names}) needs argument {param.name!r}, and the "
                f"example input gives only {given} tensor(s); give it a default (e.g. "
                f"{param.name}=None) or pass a tuple of {given + 1} or more example tensors"
            )
        concrete[param.name] = param.default
    for param in params:
        if param.kind is param.KEYWORD_ONLY and param.default is not inspect.Parameter.empty:
            concrete[param.name] = param.default
    return concrete


# Normalization layers keep their parameters in float by design (a per-channel scale and
# shift, or folded into the layer before them); they are not "missed" layers.
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def _float_modules(
    model: nn.Module,
    gm: fx.GraphModule,
    modules: Mapping[type[nn.Module], str],
    functions: Mapping[Callable[..., Any], str],
) -> tuple[FloatModule, ...]:
    """Leaf modules and parameters run in the graph that no quantizable layer holds."""
    found: dict[str, FloatModule] = {}
    weight_of_function: set[str] = set()
    for node in gm.graph.nodes:
        if node.op == "call_function":
            try:
                quantizable = node.target in functions
            except TypeError:
                quantizable = False
            if quantizable:
                weight_of_function.update(
                    str(arg.target) for arg in node.all_input_nodes if arg.op == "get_attr"
                )
    for node in gm.graph.nodes:
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
            if type(module) in modules or isinstance(module, _NORMS):
                continue
            count = sum(p.numel() for p in module.parameters())
            if count:
                found[str(node.target)] = FloatModule(str(node.target), type(module).__name__, count)
        elif node.op == "get_attr" and str(node.target) not in weight_of_function:
            value = _attribute(gm, str(node.target))
            owner = _attribute(gm, str(node.target).rpartition(".")[0]) if "." in str(node.target) else gm
            if isinstance(value, nn.Parameter) and not isinstance(owner, _NORMS):
                found[str(node.target)] = FloatModule(str(node.target), "parameter", value.numel())
    return tuple(sorted(found.values(), key=lambda m: (-m.params, m.path)))


def _attribute(root: nn.Module, path: str) -> Any:
    value: Any = root
    for part in path.split("."):
        value = getattr(value, part, None)
    return value


class _ScopeTracer(fx.Tracer):
    """An fx tracer that remembers which module's ``forward`` was running when it failed."""

    def __init__(self) -> None:
        super().__init__()
        self.failed_in: tuple[str, nn.Module] | None = None

    def call_module(
        self,
        m: nn.Module,
        forward: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:  # the innermost module records itself first
                try:
                    path = self.path_of_module(m)
                except NameError:
                    path = "?"
                self.failed_in = (path, m)
            raise


def _trace_failure_message(
    model: nn.Module, tracer: _ScopeTracer, exc: BaseException, concrete: Mapping[str, Any]
) -> str:
    if tracer.failed_in is not None:
        path, module = tracer.failed_in
        where = f"module '{path}' ({type(module).__name__})"
    else:
        where = f"the model's own forward ({type(model).__name__})"
    line = _user_line(exc)
    at = f" at {line}" if line else ""
    fixed = ""
    if concrete:
        values = ", ".join(f"{name}={value!r}" for name, value in concrete.items())
        fixed = (
            f" While tracing, forward's argument(s) beyond the example input were fixed to "
            f"their defaults ({values}); an argument the model needs must be part of the "
            "example input (a tuple, in forward's order)."
        )
    return (
        f"torch.fx cannot trace {type(model).__name__}: {where} broke the trace{at}: "
        f"{type(exc).__name__}: {exc}. Remove data-dependent Python control flow from "
        "that forward (use torch.where, or compute the condition from shapes), or make "
        f"the model traceable another way.{fixed}"
    )


def _user_line(exc: BaseException) -> str | None:
    """``file:line: `source``` of the innermost traceback frame outside torch and bitscout."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if not frame.filename.startswith((_TORCH_DIR, _THIS_DIR))
    ]
    if not frames:
        return None
    frame = frames[-1]
    source = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
    text = f"{frame.filename}:{frame.lineno}"
    return f"{text} (`{source}`)" if source else text


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


class _ShapeRecorder(fx.Interpreter):
    """Runs the graph once and records the shape of every tensor a node produces.

    (torch.fx.passes.shape_prop.ShapeProp does the same but its first use imports
    seconds' worth of torch internals.)
    """

    def shapes_of(self, *args: torch.Tensor) -> dict[fx.Node, tuple[int, ...]]:
        self._shapes: dict[fx.Node, tuple[int, ...]] = {}
        self.run(*args)
        return self._shapes

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, torch.Tensor):
            self._shapes[n] = tuple(int(d) for d in result.shape)
        return result


def _count_flops(model: nn.Module, gm: fx.GraphModule, sample: tuple[torch.Tensor, ...]) -> int:
    """FLOPs of one float forward pass on one sample (FlopCounterMode)."""
    # Imported here: its first import costs seconds, and only FLOP metrics need it.
    from torch.utils.flop_counter import FlopCounterMode

    # The model may have moved since it was traced; the sample follows it.
    device = next((t.device for t in itertools.chain(model.parameters(), model.buffers())), None)
    if device is not None:
        sample = tuple(a.to(device) for a in sample)
    counter = FlopCounterMode(display=False)
    with _eval_mode(model), torch.no_grad(), counter:
        gm(*sample)
    return int(counter.get_total_flops())


def _input_dependent_nodes(graph: fx.Graph) -> set[fx.Node]:
    dependent: set[fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" or any(arg in dependent for arg in node.all_input_nodes):
            dependent.add(node)
    return dependent


def _operand(node: fx.Node, index: int, op: str) -> Any:
    if index < len(node.args):
        return node.args[index]
    names = _OPERAND_KWARGS.get(op, ())
    return node.kwargs.get(names[index]) if index < len(names) else None


Shapes = dict[fx.Node, tuple[int, ...]]


def _full_shape(value: Any, shapes: Shapes) -> tuple[int, ...] | None:
    return shapes.get(value) if isinstance(value, fx.Node) else None


def _sample_shape(value: Any, shapes: Shapes, depends_on_input: set[fx.Node]) -> tuple[int, ...] | None:
    shape = _full_shape(value, shapes)
    if shape is None:
        return None
    return shape[1:] if value in depends_on_input and shape else shape


def _layer_info(
    gm: fx.GraphModule,
    node: fx.Node,
    modules: Mapping[type[nn.Module], str],
    functions: Mapping[Callable[..., Any], str],
    shapes: Shapes,
    depends_on_input: set[fx.Node],
) -> LayerInfo | None:
    module: nn.Module | None = None
    if node.op == "call_module":
        module = gm.get_submodule(str(node.target))
        op = modules.get(type(module))
        target = str(node.target)
    elif node.op == "call_function":
        try:
            op = functions.get(node.target)  # type: ignore[arg-type]
        except TypeError:  # an unhashable callable cannot be one of ours
            op = None
        target = f"{getattr(node.target, '__module__', '')}.{getattr(node.target, '__name__', node.target)}"
    else:
        return None
    if op is None:
        return None

    output_shape = _sample_shape(node, shapes, depends_on_input)
    data_in = _operand(node, 0, op)
    input_shape = _sample_shape(data_in, shapes, depends_on_input)
    if output_shape is None or input_shape is None:
        return None  # not a tensor op after all (e.g. a relu of a Python number)

    weight_shape: tuple[int, ...] | None = None
    bias_shape: tuple[int, ...] | None = None
    if module is not None and op != "relu":
        weight_shape = tuple(module.weight.shape)
        bias = getattr(module, "bias", None)
        bias_shape = None if bias is None else tuple(bias.shape)
    elif op != "relu":
        weight_shape = _sample_shape(_operand(node, 1, op), shapes, depends_on_input)
        if weight_shape is None:
            return None  # `x + 1`, `x * 0.5`: only tensor-tensor ops are quantizable
        if op == "linear":
            bias_shape = _sample_shape(_operand(node, 2, op), shapes, depends_on_input)

    tensors = ("data_in",)
    if weight_shape is not None:
        tensors += ("weight",)
    if bias_shape is not None:
        tensors += ("bias",)

    output_numel = math.prod(output_shape)
    if op == "linear":
        assert weight_shape is not None  # a linear always has a weight (checked above)
        macs = output_numel * weight_shape[-1]
    elif op in ("conv1d", "conv2d"):
        assert weight_shape is not None
        macs = output_numel * math.prod(weight_shape[1:])  # in_channels/groups * kernel
    elif op in ("matmul", "bmm"):
        full = _full_shape(data_in, shapes)
        assert full is not None
        macs = output_numel * full[-1]
    else:
        macs = 0
    return LayerInfo(
        name=node.name,
        op=op,
        tensors=tensors,
        input_shape=input_shape,
        weight_shape=weight_shape,
        bias_shape=bias_shape,
        output_shape=output_shape,
        input_numel=math.prod(input_shape),
        weight_numel=0 if weight_shape is None else math.prod(weight_shape),
        bias_numel=0 if bias_shape is None else math.prod(bias_shape),
        output_numel=output_numel,
        macs=macs,
        target=target,
    )


def _rewrite(gm: fx.GraphModule, quantizable: list[tuple[fx.Node, LayerInfo]]) -> None:
    """Make every quantizable node a call of a top-level module named after the node."""
    for node, info in quantizable:
        if node.op == "call_module":
            module = gm.get_submodule(str(node.target))
        else:
            module = FloatOp(info.op, node.target)  # type: ignore[arg-type]
        existing = gm._modules.get(node.name)
        if existing is None:
            if hasattr(gm, node.name):
                raise TraceError(
                    f"cannot give layer {node.name!r} its own attribute: the model already "
                    f"has an attribute named {node.name!r}. Rename that attribute."
                )
            gm.add_module(node.name, module)
        elif existing is not module:
            raise TraceError(
                f"cannot give layer {node.name!r} its own attribute: the model already has "
                f"a different submodule named {node.name!r}. Rename that submodule."
            )
        node.op = "call_module"
        node.target = node.name
    gm.delete_all_unused_submodules()
    gm.recompile()
