"""Honest coverage: parameters left in float are reported; trace_into reaches the layers of
torch's transformer modules; optional forward arguments trace."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from bitscout.errors import TraceError
from bitscout.graph import TraceCoverageWarning, trace, traceable_view


class TinyTransformer(nn.Module):
    def __init__(self, d: int = 16, classes: int = 3, batch_first: bool = True) -> None:
        super().__init__()
        self.embed = nn.Linear(4, d)
        layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=32, dropout=0.0, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.batch_first:
            return self.head(self.encoder(self.embed(x).transpose(0, 1)).mean(0))
        return self.head(self.encoder(self.embed(x)).mean(1))


class HFStyle(nn.Module):
    """An HF-style classifier: token ids in, an optional attention mask."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.query = nn.Linear(8, 8)
        self.classifier = nn.Linear(8, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(input_ids.long())
        scores = torch.matmul(self.query(h), h.transpose(1, 2))
        if attention_mask is not None:
            scores = scores + (1.0 - attention_mask[:, None, :]) * -1e9
        return self.classifier(torch.matmul(scores.softmax(-1), h).mean(1))


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_an_encoder_left_as_a_leaf_is_reported_with_its_share() -> None:
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    with pytest.warns(TraceCoverageWarning) as caught:
        traced = trace(model, torch.randn(3, 5, 4))
    assert traced.table.names() == ["embed", "head"]
    encoder = _params(model.encoder)
    assert [(m.path, m.kind, m.params) for m in traced.float_modules] == [("encoder", "TransformerEncoder", encoder)]
    assert traced.float_share == pytest.approx(encoder / _params(model))
    message = str(caught[0].message)
    assert f"{encoder / _params(model):.1%} of the model's {_params(model):,} parameters" in message
    assert f"encoder (TransformerEncoder, {encoder:,})" in message
    assert 'trace_into = ["TransformerEncoder"]' in message


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("into", ["TransformerEncoderLayer", "TransformerEncoder"])
def test_trace_into_puts_attention_and_feed_forward_linears_in_the_table(into: str, batch_first: bool) -> None:
    torch.manual_seed(0)
    model = TinyTransformer(batch_first=batch_first).eval()
    x = torch.randn(3, 5, 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceCoverageWarning)  # nothing is left in float
        traced = trace(model, x, trace_into=[into])
    linears = [layer.name for layer in traced.table if layer.op == "linear"]
    for i in range(2):
        for part in ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj",
                     "linear1", "linear2"):
            assert f"encoder_layers_{i}_{part}" in linears
    assert sum(layer.op == "matmul" for layer in traced.table) == 4  # q.k^T and attn.v per layer
    assert traced.float_modules == ()
    # Every parameter is now in a quantizable layer: the table counts each one once.
    covered = sum(layer.weight_numel + layer.bias_numel for layer in traced.table if layer.op == "linear")
    norms = sum(_params(m) for m in model.modules() if isinstance(m, nn.LayerNorm))
    assert covered + norms == _params(model)
    # The same function, and the user's model untouched.
    torch.testing.assert_close(traced.gm(x), model(x), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.encoder, nn.TransformerEncoder)


def test_the_twin_attention_matches_torch_with_masks() -> None:
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    twin = traceable_view(mha, ["MultiheadAttention"])
    q, k = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    causal = torch.triu(torch.ones(4, 6, dtype=torch.bool), 1)
    padding = torch.tensor([[False] * 5 + [True], [False] * 6])
    want, want_w = mha(q, k, k, attn_mask=causal, key_padding_mask=padding)
    got, got_w = twin(q, k, k, attn_mask=causal, key_padding_mask=padding)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_w, want_w, rtol=1e-5, atol=1e-6)
    # The projections are views of torch's packed weight, not copies.
    assert twin.q_proj.weight.data_ptr() == mha.in_proj_weight.data_ptr()


def test_unknown_trace_into_name_lists_the_known_ones() -> None:
    with pytest.raises(TraceError, match=r"unknown module class\(es\) \['TransformerDecoderLayer'\].*'MultiheadAttention'"):
        trace(TinyTransformer(), torch.randn(2, 5, 4), trace_into=["TransformerDecoderLayer"])


def test_hf_style_optional_attention_mask_traces() -> None:
    torch.manual_seed(0)
    model = HFStyle().eval()
    ids = torch.randint(0, 10, (3, 5)).float()
    with pytest.warns(TraceCoverageWarning, match=r"embed \(Embedding, 80\)"):
        traced = trace(model, ids)
    assert [layer.name for layer in traced.table] == ["query", "matmul", "matmul_1", "classifier"]
    torch.testing.assert_close(traced.gm(ids), model(ids), rtol=0, atol=0)
    # Given as a second example tensor, the mask is traced as an input.
    mask = torch.ones(3, 5)
    mask[0, 3:] = 0
    with pytest.warns(TraceCoverageWarning):
        masked = trace(model, (ids, mask))
    torch.testing.assert_close(masked.gm(ids, mask), model(ids, mask), rtol=0, atol=0)


def test_a_trace_failure_names_the_arguments_fixed_to_defaults() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent: cannot be traced
                return self.fc(x) * scale
            return self.fc(x)

    with pytest.raises(TraceError, match=r"fixed to their defaults \(scale=1.0\)"):
        trace(Branchy(), torch.randn(2, 4))

    class NeedsTwo(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.fc(x) * mask

    with pytest.raises(TraceError, match=r"forward\(x, mask\) needs argument 'mask'.*gives only 1 tensor"):
        trace(NeedsTwo(), torch.randn(2, 4))


def test_batchnorm_and_layernorm_are_not_reported() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LayerNorm(16 * 4),
                          nn.Linear(64, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceCoverageWarning)
        traced = trace(model.eval(), torch.randn(2, 1, 6, 6))
    assert traced.float_modules == () and traced.coverage_warning() is None
