"""Tracing and the layer table: node names, shapes, hand-counted MACs and parameters."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bitscout.data import DatasetInfo
from bitscout.errors import TraceError
from bitscout.graph import FloatOp, trace
from bitscout.models import build_model


def _info(name: str, shape: tuple[int, ...], classes: int) -> DatasetInfo:
    return DatasetInfo(name, shape, classes, tuple(str(i) for i in range(classes)), "test")


JSC = _info("jsc", (16,), 5)
DIGITS = _info("digits", (64,), 10)


def test_jsc_tiny_table_matches_hand_count() -> None:
    torch.manual_seed(0)
    model = build_model("jsc-tiny", JSC)
    traced = trace(model, torch.randn(8, 16))
    table = traced.table
    assert table.names() == ["seq_blocks_1", "seq_blocks_2", "seq_blocks_3"]
    assert [layer.op for layer in table] == ["relu", "linear", "relu"]
    fc = table["seq_blocks_2"]
    assert fc.tensors == ("data_in", "weight", "bias")
    assert (fc.input_shape, fc.weight_shape, fc.bias_shape, fc.output_shape) == ((16,), (5, 16), (5,), (5,))
    assert (fc.input_numel, fc.weight_numel, fc.bias_numel, fc.output_numel) == (16, 80, 5, 5)
    assert fc.macs == 16 * 5
    assert fc.target == "seq_blocks.2"
    relu = table["seq_blocks_1"]
    assert relu.tensors == ("data_in",) and relu.macs == 0 and relu.weight_shape is None
    # BatchNorm1d(16): weight+bias 32, running mean/var 32 (+1 integer counter); Linear 80+5.
    assert table.param_count == 32 + 85
    assert table.buffer_float_count == 32
    assert table.buffer_count == 33
    assert table.float_flops == 2 * 80
    # The traced module holds the Linear at the top level under the node's name.
    assert traced.gm.seq_blocks_2 is model.seq_blocks[2]


def test_jsc_s_table_matches_hand_count() -> None:
    model = build_model("jsc-s", JSC)
    table = trace(model, torch.randn(4, 16)).table
    linears = [layer for layer in table if layer.op == "linear"]
    assert [layer.name for layer in linears] == [
        "module_list_2", "module_list_5", "module_list_7", "module_list_9", "module_list_11"
    ]
    widths = [16, 64, 32, 32, 32, 5]
    expected_macs = [widths[i] * widths[i + 1] for i in range(5)]  # 1024, 2048, 1024, 1024, 160
    assert [layer.macs for layer in linears] == expected_macs
    assert [layer.weight_shape for layer in linears] == [(widths[i + 1], widths[i]) for i in range(5)]
    assert sum(layer.macs for layer in table) == table.total_macs == 5280
    assert [layer.name for layer in table if layer.op == "relu"] == [
        "module_list_1", "module_list_4", "module_list_6", "module_list_8", "module_list_10", "module_list_13"
    ]
    # Linear params 1088 + 2080 + 1056 + 1056 + 165; BatchNorm(16), (64), (5): 2 * 85.
    assert table.param_count == 5445 + 170
    assert table.float_flops == 2 * 5280


def test_digits_cnn_table_matches_hand_count() -> None:
    model = build_model("cnn", DIGITS)
    table = trace(model, torch.randn(3, 64)).table
    assert table.names() == ["conv1", "relu1", "conv2", "relu2", "fc"]
    conv1, conv2, fc = table["conv1"], table["conv2"], table["fc"]
    assert (conv1.input_shape, conv1.weight_shape, conv1.bias_shape, conv1.output_shape) == (
        (1, 8, 8), (16, 1, 3, 3), (16,), (16, 8, 8)
    )
    assert conv1.macs == 16 * 8 * 8 * 1 * 9  # output elements * in_channels * kernel
    assert (conv2.input_shape, conv2.weight_shape, conv2.output_shape) == ((16, 8, 8), (32, 16, 3, 3), (32, 8, 8))
    assert conv2.macs == 32 * 8 * 8 * 16 * 9
    assert (fc.input_shape, fc.weight_shape, fc.output_shape) == ((512,), (10, 512), (10,))
    assert fc.macs == 512 * 10
    assert table.param_count == (16 * 9 + 16) + (32 * 16 * 9 + 32) + (512 * 10 + 10)
    assert table.float_flops == 2 * (9216 + 294912 + 5120)
    assert table.buffer_count == 0


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4))
        self.b = nn.Parameter(torch.randn(6))
        self.m = nn.Parameter(torch.randn(6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 5, 4)
        h = F.relu(F.linear(x, self.w, self.b))        # (B, 5, 6)
        y = torch.matmul(h, self.m)                     # (B, 5, 3)
        z = y @ y.transpose(1, 2)                       # (B, 5, 5)
        z = torch.bmm(z, z)                             # (B, 5, 5)
        z = z + 1                                       # scalar: not quantizable
        z = torch.add(z, z) * 0.5                       # add quantizable, scalar mul not
        z = z * z                                       # tensor mul
        return torch.relu(z)


def test_functional_ops_found_with_shapes_and_macs() -> None:
    model = _Functional()
    x = torch.randn(2, 5, 4)
    traced = trace(model, x)
    rows = {layer.name: layer for layer in traced.table}
    assert [(layer.name, layer.op) for layer in traced.table] == [
        ("linear", "linear"), ("relu", "relu"), ("matmul", "matmul"), ("matmul_1", "matmul"),
        ("bmm", "bmm"), ("add_1", "add"), ("mul_1", "mul"), ("relu_1", "relu"),
    ]
    lin = rows["linear"]
    assert lin.tensors == ("data_in", "weight", "bias")
    assert (lin.input_shape, lin.weight_shape, lin.bias_shape, lin.output_shape) == ((5, 4), (6, 4), (6,), (5, 6))
    assert lin.macs == 5 * 6 * 4  # extra leading dimension counts
    assert rows["matmul"].weight_shape == (6, 3) and rows["matmul"].macs == 5 * 3 * 6
    # Both operands depend on the input: per-sample shapes drop the batch dimension.
    assert rows["matmul_1"].weight_shape == (3, 5) and rows["matmul_1"].macs == 5 * 5 * 3
    assert rows["bmm"].macs == 5 * 5 * 5
    assert rows["add_1"].tensors == ("data_in", "weight") and rows["add_1"].macs == 0
    assert rows["mul_1"].macs == 0 and rows["relu_1"].tensors == ("data_in",)
    assert isinstance(traced.gm.matmul, FloatOp) and traced.gm.matmul.fn is torch.matmul
    assert torch.equal(traced.gm(x), model(x))


def test_conv1d_and_repeated_module() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(4, 6, kernel_size=3, groups=2, stride=2)
            self.fc = nn.Linear(6, 6)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv(x).transpose(1, 2)  # (B, 4, 6)
            return self.fc(self.fc(h))

    model = Net()
    traced = trace(model, torch.randn(3, 4, 9))
    conv = traced.table["conv"]
    assert conv.op == "conv1d" and conv.output_shape == (6, 4)
    assert conv.macs == 6 * 4 * (4 // 2) * 3
    assert traced.table.names() == ["conv", "fc", "fc_1"]
    assert traced.table["fc_1"].macs == 4 * 6 * 6
    assert traced.gm.fc is traced.gm.fc_1 is model.fc
    assert traced.table.param_count == (6 * 2 * 3 + 6) + (36 + 6)  # shared fc counted once


def test_trace_leaves_the_model_alone() -> None:
    torch.manual_seed(1)
    model = build_model("jsc-s", JSC)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(16, 16)
    traced = trace(model, x)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm stats untouched
    assert all(m.training for m in model.modules())
    model.eval()
    assert torch.equal(traced.gm(x), model(x))
    assert {n for n, _ in model.named_modules()} >= {"module_list", "module_list.2"}


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


def test_untraceable_model_names_module_and_line() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), _DataDependent()))
    with pytest.raises(TraceError) as info:
        trace(model, torch.randn(2, 3))
    message = str(info.value)
    lines, start = inspect.getsourcelines(_DataDependent.forward)
    line = start + next(i for i, text in enumerate(lines) if "x.sum() > 0" in text)
    assert "module '1.1' (_DataDependent)" in message
    assert f"{__file__}:{line}" in message
    assert "if x.sum() > 0:" in message


def test_bad_example_input_is_a_trace_error() -> None:
    with pytest.raises(TraceError, match=r"shape \(2, 7\)"):
        trace(build_model("jsc-tiny", JSC), torch.randn(2, 7))


def test_example_input_failure_is_one_line_without_fx_context() -> None:
    # torch.fx appends "While executing %fc ..." and a tlparse hint to the error.
    with pytest.raises(TraceError) as caught:
        trace(nn.Sequential(nn.Linear(30, 4)), torch.randn(2, 13))
    assert str(caught.value) == (
        "Sequential was traced, but running it on the example input (shape (2, 13)) failed: "
        "mat1 and mat2 shapes cannot be multiplied (2x13 and 30x4). Give an example input the "
        "model accepts (a batch of samples with the dataset's input shape)."
    )
