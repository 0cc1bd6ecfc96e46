"""Model builders: MASE's structures, shapes, fx-traceability, determinism, user factories."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import fx, nn

from bitscout.data import DatasetInfo
from bitscout.errors import ModelError
from bitscout.models import build_model, model_names

JSC = DatasetInfo("jsc", (16,), 5, ("g", "q", "w", "z", "t"), "test")
DIGITS = DatasetInfo("digits", (64,), 10, tuple("0123456789"), "test")
MNIST = DatasetInfo("mnist5k", (1, 28, 28), 10, tuple("0123456789"), "test")
WINE = DatasetInfo("wine", (13,), 3, ("a", "b", "c"), "test")

CASES = [
    ("jsc-tiny", JSC), ("jsc-toy", JSC), ("jsc-s", JSC),
    ("mlp", DIGITS), ("mlp", MNIST), ("mlp", WINE), ("cnn", DIGITS), ("cnn", MNIST),
]


def _layer_types(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules() if not list(m.children())]


def test_registry_names() -> None:
    assert {"jsc-tiny", "jsc-toy", "jsc-s", "mlp", "cnn"} <= set(model_names())


@pytest.mark.parametrize(("name", "info"), CASES, ids=[f"{n}-{i.name}" for n, i in CASES])
def test_forward_shape_and_fx_trace(name: str, info: DatasetInfo) -> None:
    torch.manual_seed(0)
    model = build_model(name, info).eval()
    x = torch.randn(7, *info.input_shape)
    out = model(x)
    assert out.shape == (7, info.num_classes)
    gm = fx.symbolic_trace(model)
    torch.testing.assert_close(gm(x), out, rtol=0, atol=0)


@pytest.mark.parametrize(("name", "info"), CASES, ids=[f"{n}-{i.name}" for n, i in CASES])
def test_deterministic_given_manual_seed(name: str, info: DatasetInfo) -> None:
    torch.manual_seed(3)
    a = build_model(name, info).state_dict()
    torch.manual_seed(3)
    b = build_model(name, info).state_dict()
    torch.manual_seed(4)
    c = build_model(name, info).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))


def test_jsc_tiny_is_mases_and_fx_names_its_linear_seq_blocks_2() -> None:
    model = build_model("jsc-tiny", JSC)
    assert _layer_types(model) == ["BatchNorm1d", "ReLU", "Linear", "ReLU"]
    gm = fx.symbolic_trace(model)
    nodes = {n.name: n for n in gm.graph.nodes if n.op == "call_module"}
    assert list(nodes) == ["seq_blocks_0", "seq_blocks_1", "seq_blocks_2", "seq_blocks_3"]
    linear = gm.get_submodule(nodes["seq_blocks_2"].target)
    assert isinstance(linear, nn.Linear) and (linear.in_features, linear.out_features) == (16, 5)
    assert set(model.state_dict()) == {
        "seq_blocks.0.weight", "seq_blocks.0.bias", "seq_blocks.0.running_mean",
        "seq_blocks.0.running_var", "seq_blocks.0.num_batches_tracked",
        "seq_blocks.2.weight", "seq_blocks.2.bias",
    }


def test_jsc_toy_and_s_follow_mase_layer_lists() -> None:
    # Written out from MASE's chop/models/physical/jet_substructure/__init__.py.
    assert _layer_types(build_model("jsc-toy", JSC)) == [
        "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d",
        "ReLU", "Linear", "BatchNorm1d", "ReLU",
    ]
    s = build_model("jsc-s", JSC)
    assert _layer_types(s) == [
        "BatchNorm1d", "ReLU", "Linear", "BatchNorm1d", "ReLU",
        "Linear", "ReLU", "Linear", "ReLU", "Linear", "ReLU",
        "Linear", "BatchNorm1d", "ReLU",
    ]
    widths = [(m.in_features, m.out_features) for m in s.modules() if isinstance(m, nn.Linear)]
    assert widths == [(16, 64), (64, 32), (32, 32), (32, 32), (32, 5)]
    assert "module_list.2.weight" in s.state_dict()  # MASE's attribute names, for checkpoints


def test_jsc_models_refuse_images() -> None:
    with pytest.raises(ModelError, match=r"flat feature vectors.*\(1, 28, 28\)"):
        build_model("jsc-tiny", MNIST)


def test_mlp_default_and_options() -> None:
    model = build_model("mlp", DIGITS)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 64), (64, 32), (32, 10)]
    gm = fx.symbolic_trace(model)
    assert [n.name for n in gm.graph.nodes if n.op == "call_module"] == [
        "flatten", "fc1", "relu1", "fc2", "relu2", "fc3"]
    narrow = build_model("mlp", DIGITS, {"hidden": [8]})
    assert [(m.in_features, m.out_features) for m in narrow.modules() if isinstance(m, nn.Linear)] == [(64, 8), (8, 10)]
    # 784 inputs for mnist images, flattened.
    assert next(m for m in build_model("mlp", MNIST).modules() if isinstance(m, nn.Linear)).in_features == 784


def test_bad_options_are_named() -> None:
    with pytest.raises(ModelError, match=r"model 'mlp'.*model_options.hiden"):
        build_model("mlp", DIGITS, {"hiden": [8]})
    with pytest.raises(ModelError, match=r"model_options.hidden.0"):
        build_model("mlp", DIGITS, {"hidden": [0]})
    with pytest.raises(ModelError, match=r"model 'jsc-tiny'"):
        build_model("jsc-tiny", JSC, {"hidden": [8]})


def test_cnn_adapts_to_8x8_and_28x28() -> None:
    small = build_model("cnn", DIGITS)
    assert isinstance(small[0], nn.Unflatten)  # 64 features -> (1, 8, 8)
    assert small.fc.in_features == 32 * 4 * 4
    big = build_model("cnn", MNIST)
    assert big.conv1.in_channels == 1 and big.fc.in_features == 32 * 14 * 14
    with pytest.raises(ModelError, match="square images"):
        build_model("cnn", WINE)


def test_unknown_model_lists_available() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'jsc-tyni'; available: .*jsc-tiny.*package.module:function"):
        build_model("jsc-tyni", JSC)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"bitscout_user_models_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import torch
        import torch.nn as nn

        def with_info(info, width=4):
            return nn.Sequential(nn.Flatten(), nn.Linear(info.input_shape[0], width),
                                 nn.ReLU(), nn.Linear(width, info.num_classes))

        def without_args():
            return nn.Linear(16, 5)

        def needs_width(info, width, *, depth=1):
            return nn.Linear(info.input_shape[0], info.num_classes)

        def broken(info):
            raise RuntimeError("no weights today")

        def not_a_model():
            return 42

        def with_kwargs(**kwargs):
            return nn.Linear(kwargs.get("features", 16), 5)

        class Net(nn.Module):
            def __init__(self, info, hidden=3):
                super().__init__()
                self.fc = nn.Linear(info.input_shape[0], hidden)

            def forward(self, x):
                return self.fc(x)

        class Pair(nn.Module):
            def __init__(self, info, as_dict=False):
                super().__init__()
                self.fc = nn.Linear(info.input_shape[0], info.num_classes)
                self.as_dict = as_dict

            def forward(self, x):
                return {"logits": self.fc(x)} if self.as_dict else (self.fc(x), x)

        class Probe(nn.Module):
            # records what the build-time check ran it on

            def __init__(self, info):
                super().__init__()
                self.fc = nn.Linear(info.input_shape[0], info.num_classes)
                self.drop = nn.Dropout(0.5)
                self.seen = []

            def forward(self, x):
                self.seen.append((tuple(x.shape), self.training, torch.is_grad_enabled()))
                torch.rand(1)  # a forward that draws random numbers
                return self.fc(self.drop(x))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_user_factory_with_and_without_info(user_module: str) -> None:
    model = build_model(f"{user_module}:with_info", WINE, {"width": 6})
    assert model(torch.randn(2, 13)).shape == (2, 3)
    assert model[1].out_features == 6
    assert isinstance(build_model(f"{user_module}:without_args", JSC), nn.Linear)


def test_kwargs_factory_gets_only_its_options_and_a_class_gets_info(user_module: str) -> None:
    # A **kwargs factory did not ask for info: it gets the options and nothing else.
    assert build_model(f"{user_module}:with_kwargs", JSC).in_features == 16
    seven = DatasetInfo("seven", (7,), 5, tuple("abcde"), "test")
    assert build_model(f"{user_module}:with_kwargs", seven, {"features": 7}).in_features == 7
    two = DatasetInfo("two", (13,), 2, ("a", "b"), "test")
    net = build_model(f"{user_module}:Net", two, {"hidden": 2})
    assert (net.fc.in_features, net.fc.out_features) == (13, 2)


def test_user_factory_errors_name_the_failing_part(user_module: str) -> None:
    with pytest.raises(ModelError, match="cannot import module 'no_such_pkg_xyz'"):
        build_model("no_such_pkg_xyz:make", JSC)
    with pytest.raises(ModelError, match=f"module '{user_module}' has no attribute 'missing'"):
        build_model(f"{user_module}:missing", JSC)
    with pytest.raises(ModelError, match=r"calling broken\(info=...\) failed: RuntimeError: no weights today"):
        build_model(f"{user_module}:broken", JSC)
    with pytest.raises(ModelError, match="not_a_model returned int, not a torch.nn.Module"):
        build_model(f"{user_module}:not_a_model", JSC)
    with pytest.raises(ModelError, match="one colon"):
        build_model("a:b:c", JSC)


def _refusal(*args: object) -> str:
    """The message of the ModelError that ``build_model(*args)`` raises."""
    with pytest.raises(ModelError) as caught:
        build_model(*args)
    return str(caught.value)


def test_user_model_that_does_not_fit_the_data_is_refused_when_built(user_module: str) -> None:
    # Each of these used to fail later with a traceback: inside the loss of `train`
    # (a tuple is not a tensor, target out of bounds) or in the first matmul.
    wine = "the data set 'wine' has inputs of shape (13,) and 3 classes"
    assert _refusal(f"{user_module}:with_kwargs", WINE, {"features": 30}) == (
        f"model '{user_module}:with_kwargs': running it on a batch of the data's shape (2, 13) failed: "
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x13 and 30x5). "
        "The data set 'wine' has inputs of shape (13,) and 3 classes; check model_options (its input size) "
        "against the data set"
    )
    assert _refusal(f"{user_module}:Net", WINE, {"hidden": 2}) == (
        f"model '{user_module}:Net': forward returns shape (2, 2) for a batch of 2, but {wine}, so it "
        "must return shape (2, 3); give the model 3 outputs (model_options, e.g. its class count), "
        "or use the data set it was made for"
    )
    for options, kind in (({}, "tuple"), ({"as_dict": True}, "dict")):
        assert _refusal(f"{user_module}:Pair", WINE, options).startswith(
            f"model '{user_module}:Pair': forward returns a {kind}, but bitscout needs one tensor of "
            "class scores (logits) of shape (batch, 3). Return only the logits"
        )


def test_build_time_check_runs_in_eval_mode_without_grad_and_leaves_state_alone(user_module: str) -> None:
    torch.manual_seed(5)
    model = build_model(f"{user_module}:Probe", WINE)
    after_build = torch.rand(3)
    torch.manual_seed(5)
    nn.Linear(13, 3)  # the same initialisation draws, without the check's forward
    assert torch.equal(torch.rand(3), after_build)
    assert model.seen == [((2, 13), False, False)]
    assert model.training and model.drop.training


def test_misspelt_or_missing_model_option_is_named_before_the_call(user_module: str) -> None:
    assert _refusal(f"{user_module}:needs_width", WINE, {"widht": 6}) == (
        f"model_options.widht: model '{user_module}:needs_width' (needs_width) takes no option 'widht'; "
        "did you mean 'width'?"
    )
    assert _refusal(f"{user_module}:needs_width", WINE, {"depth": 2}) == (
        f"model '{user_module}:needs_width': needs_width needs 'width', which model_options does not give; "
        "set model_options = { width = ... } in the config"
    )
    assert isinstance(build_model(f"{user_module}:needs_width", WINE, {"width": 3, "depth": 2}), nn.Linear)
    # info is bitscout's to give, not an option.
    with pytest.raises(ModelError, match="takes no option 'info'"):
        build_model(f"{user_module}:needs_width", WINE, {"width": 3, "info": 1})


def test_a_misspelt_factory_or_a_file_path_says_what_to_write(user_module: str) -> None:
    # user9: "has no attribute 'Nett'" with no hint, and "lib/nets.py:Net" (a file path,
    # what people write first) told only the rule.
    with pytest.raises(ModelError) as caught:
        build_model(f"{user_module}:Nett", JSC)
    assert str(caught.value) == (
        f"model '{user_module}:Nett': module '{user_module}' has no attribute 'Nett'; did you mean 'Net'?"
    )
    with pytest.raises(ModelError) as caught:
        build_model("lib/nets.py:Net", JSC)
    assert str(caught.value) == (
        "model 'lib/nets.py:Net' must be a registered name or 'package.module:factory' (one colon "
        "between a module path and a function name); for the file lib/nets.py, write 'lib.nets:Net' "
        "(run bitscout from the folder holding lib/, or put that folder on PYTHONPATH)"
    )
    with pytest.raises(ModelError, match=r"for the file nets.py, write 'nets:Net' \(run bitscout from the folder holding nets.py,"):
        build_model("nets.py:Net", JSC)
