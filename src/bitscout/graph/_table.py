"""The layer table: every quantizable node of a traced model, with shapes and costs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bitscout.errors import QuantConfigError

__all__ = ["LayerInfo", "LayerTable"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerInfo:
    """One quantizable node of a traced model.

    Shapes are per sample: the batch dimension of every tensor that depends on the
    model input is dropped; a parameter keeps its full shape.

    Attributes:
        name: The node name as torch.fx names it (``seq_blocks_2``); also the name of the
            top-level attribute of the traced module that holds the layer.
        op: The op type: ``linear``, ``conv1d``, ``conv2d``, ``matmul``, ``bmm``, ``add``,
            ``mul`` or ``relu``.
        tensors: Which of ``data_in``, ``weight`` and ``bias`` the layer has. A relu has
            only ``data_in``; for matmul, bmm, add and mul the first operand is
            ``data_in`` and the second ``weight``.
        input_shape: Shape of ``data_in`` per sample.
        weight_shape: Shape of the weight (or second operand), None if there is none.
        bias_shape: Shape of the bias, None if there is none.
        output_shape: Shape of the output per sample.
        input_numel: Elements of ``data_in`` per sample.
        weight_numel: Elements of the weight (0 when there is none).
        bias_numel: Elements of the bias (0 when there is none).
        output_numel: Elements of the output per sample.
        macs: Multiply-accumulates per sample. linear: ``in_features`` per output
            element (so extra leading dimensions count); conv:
            ``output elements * in_channels / groups * kernel elements``; matmul and
            bmm: output elements times the contracted dimension; add, mul and relu do
            no multiply-accumulate and count 0.
        target: What the traced code called: the qualified module name
            (``seq_blocks.2``) or the function name (``torch.matmul``).
    """

    name: str
    op: str
    tensors: tuple[str, ...]
    input_shape: Shape
    weight_shape: Shape | None
    bias_shape: Shape | None
    output_shape: Shape
    input_numel: int
    weight_numel: int
    bias_numel: int
    output_numel: int
    macs: int
    target: str = ""


class LayerTable:
    """The quantizable layers of a model in graph order, plus whole-model counts.

    Args:
        layers: The layers, in the order the graph runs them.
        float_flops: Floating-point operations of one float forward pass for one sample,
            as counted by ``torch.utils.flop_counter.FlopCounterMode`` (2 per MAC of
            matmuls and convolutions; elementwise ops count 0); or a function that
            counts them, called once when :attr:`float_flops` is first read (the
            counter's first use costs seconds of imports, which only FLOP metrics
            should pay).
        param_count: Parameter elements of the whole model (each shared tensor once).
        buffer_count: Buffer elements of the whole model.
        buffer_float_count: Elements of the floating-point buffers (BatchNorm
            statistics, ...), which a model-size metric stores at 32 bits.
    """

    def __init__(
        self,
        layers: tuple[LayerInfo, ...],
        *,
        float_flops: int | Callable[[], int],
        param_count: int,
        buffer_count: int = 0,
        buffer_float_count: int = 0,
    ) -> None:
        self.layers = tuple(layers)
        self._float_flops = float_flops
        self.param_count = param_count
        self.buffer_count = buffer_count
        self.buffer_float_count = buffer_float_count
        self._by_name = {layer.name: layer for layer in self.layers}

    @property
    def float_flops(self) -> int:
        """FLOPs of one float forward pass for one sample (FlopCounterMode)."""
        if callable(self._float_flops):
            self._float_flops = int(self._float_flops())
        return self._float_flops

    def __iter__(self) -> Iterator[LayerInfo]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> LayerInfo:
        try:
            return self._by_name[name]
        except KeyError:
            raise QuantConfigError(
                f"the model has no quantizable layer named {name!r}; "
                f"its layers are: {', '.join(self.names()) or '(none)'}"
            ) from None

    def names(self) -> list[str]:
        """Node names of the layers, in graph order."""
        return [layer.name for layer in self.layers]

    def op_types(self) -> list[str]:
        """The op types present, in order of first appearance."""
        return list(dict.fromkeys(layer.op for layer in self.layers))

    @property
    def total_macs(self) -> int:
        """Multiply-accumulates per sample summed over the quantizable layers."""
        return sum(layer.macs for layer in self.layers)

    def __repr__(self) -> str:
        return (
            f"LayerTable({len(self)} layers, macs={self.total_macs}, "
            f"param_count={self.param_count})"
        )

    def format(self) -> str:
        """The table as aligned text, one layer a line."""
        header = ("node", "op", "input", "weight", "bias", "output", "MACs")
        rows = [header] + [
            (
                layer.name,
                layer.op,
                _fmt_shape(layer.input_shape),
                _fmt_shape(layer.weight_shape),
                _fmt_shape(layer.bias_shape),
                _fmt_shape(layer.output_shape),
                str(layer.macs),
            )
            for layer in self.layers
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows
        )


def _fmt_shape(shape: Shape | None) -> str:
    if shape is None:
        return "-"
    return "(" + ", ".join(str(d) for d in shape) + ")"
