"""BatchNorm folding against the BatchNorm formula computed by hand in float64."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bitscout.graph import fold_batchnorm, trace


def _randomize(bn: nn.modules.batchnorm._BatchNorm, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        bn.running_mean.copy_(torch.rand(bn.num_features, generator=g) * 2 - 1)
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) * 1.5 + 0.5)
        bn.weight.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
        bn.bias.copy_(torch.rand(bn.num_features, generator=g) - 0.5)


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3),
    )
    _randomize(model[1], 1)
    _randomize(model[5], 2)
    return model.eval()


def test_folded_weights_match_the_batchnorm_formula_in_float64() -> None:
    model = _cnn()
    folded = fold_batchnorm(model)
    assert folded.folded == {"_0": "1", "_4": "5"}
    for layer_path, bn in (("0", model[1]), ("4", model[5])):
        layer = model.get_submodule(layer_path)
        w = layer.weight.detach().double().numpy()
        b = np.zeros(w.shape[0]) if layer.bias is None else layer.bias.detach().double().numpy()
        mean, var = bn.running_mean.double().numpy(), bn.running_var.double().numpy()
        gamma, beta = bn.weight.detach().double().numpy(), bn.bias.detach().double().numpy()
        scale = gamma / np.sqrt(var + bn.eps)
        want_w = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        want_b = ((b - mean) * scale + beta).astype(np.float32)
        got = folded.model.get_submodule(layer_path)
        assert np.array_equal(got.weight.detach().numpy(), want_w)
        assert np.array_equal(got.bias.detach().numpy(), want_b)


def test_folded_model_computes_what_the_eval_model_does_and_leaves_it_untouched() -> None:
    model = _cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    folded = fold_batchnorm(model).model
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), rtol=1e-5, atol=1e-5)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert model[0].bias is None  # the user's conv did not get the folded bias
    assert sorted(folded.state_dict()) == ["0.bias", "0.weight", "4.bias", "4.weight", "7.bias", "7.weight"]


def test_layer_names_stay_so_configs_keyed_by_name_still_apply() -> None:
    model = _cnn()
    x = torch.randn(2, 1, 8, 8)
    plain = trace(model, x).table
    folded = trace(fold_batchnorm(model).model, x).table
    assert plain.names() == folded.names()
    assert folded["_0"].bias_shape == (4,) and plain["_0"].bias_shape is None
    assert folded.param_count == plain.param_count - 2 * (4 + 8) + 4  # BN gone, conv bias added


def test_what_does_not_fold_is_left_alone() -> None:
    torch.manual_seed(0)
    first = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 4)).eval()  # nothing before the BN
    assert fold_batchnorm(first).model is first and fold_batchnorm(first).folded == {}

    class Shared(nn.Module):  # the linear's output is used twice: folding would change the skip
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.bn = nn.BatchNorm1d(4)

        def forward(self, x):
            y = self.fc(x)
            return self.bn(y) + y

    shared = Shared().eval()
    assert fold_batchnorm(shared).folded == {}
    no_stats = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False))
    assert fold_batchnorm(no_stats).folded == {}
    conv1d = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3)).eval()
    _randomize(conv1d[1], 4)
    x = torch.randn(5, 2, 9)
    result = fold_batchnorm(conv1d)
    assert result.folded == {"_0": "1"}
    with torch.no_grad():
        assert torch.allclose(result.model(x), conv1d(x), rtol=1e-5, atol=1e-5)
