"""Traceable twins of torch's transformer modules, so that their layers can be quantized.

torch.fx keeps every ``torch.nn`` module as one leaf: an ``nn.TransformerEncoder`` is a
single node holding all of its weights, and bitscout sees no layer inside it. Tracing into
it does not work either: its ``forward`` branches on tensor properties (the fast path,
nested tensors) and ``nn.MultiheadAttention`` runs one fused function on a packed
``in_proj_weight``.

:func:`traceable_view` returns a view of a model in which each such module named in
``trace_into`` is replaced by a twin that computes the same function with plain parts: the
attention's query, key, value and output projections as ``nn.Linear`` layers, its two
products as ``torch.matmul`` calls, the feed-forward block as in torch's slow path. The
twins share the original's tensors (the projections' weights are views of the packed
weight); the user's model is not modified.

Limits of the twin attention: ``add_bias_kv`` and ``add_zero_attn`` are not supported;
masks known while tracing may be boolean or additive, masks passed in as inputs must be
additive float masks of shape ``(L, S)``; ``is_causal`` is a hint only, as in torch (give
the causal mask itself).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bitscout.errors import TraceError

__all__ = [
    "TRACE_INTO_NAMES",
    "TraceableMultiheadAttention",
    "TraceableEncoderLayer",
    "TraceableEncoder",
    "traceable_view",
]


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An ``nn.Linear`` holding the given tensors (no fresh initialisation, no RNG draw)."""
    layer = nn.Linear.__new__(nn.Linear)
    nn.Module.__init__(layer)
    layer.in_features, layer.out_features = int(weight.shape[1]), int(weight.shape[0])
    layer.weight = weight if isinstance(weight, nn.Parameter) else nn.Parameter(weight, weight.requires_grad)
    if bias is None:
        layer.register_parameter("bias", None)
    else:
        layer.bias = bias if isinstance(bias, nn.Parameter) else nn.Parameter(bias, bias.requires_grad)
    return layer


def _rows(tensor: torch.Tensor | None, index: int, size: int) -> torch.Tensor | None:
    """Rows ``index*size .. (index+1)*size`` of a packed tensor, as a view of its storage."""
    return None if tensor is None else tensor.detach()[index * size : (index + 1) * size].requires_grad_(
        tensor.requires_grad
    )


def _additive(mask: Any, heads: int) -> Any:
    """A mask as a float tensor added to the attention scores ``(B, H, L, S)``.

    A mask known while tracing (a real tensor) may be boolean (True: not attended) or
    additive, 2-D or 3-D (``B*H`` first); one that arrives as a traced input is taken as
    an additive ``(L, S)`` mask: its dtype cannot be looked at while tracing.
    """
    if isinstance(mask, torch.Tensor):
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape).masked_fill(mask, float("-inf"))
        if mask.dim() == 3:
            mask = mask.unflatten(0, (-1, heads))
    return mask


class TraceableMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` with separate projections and explicit products.

    Build it with :meth:`from_torch`; it shares the original's tensors.

    Attributes:
        q_proj, k_proj, v_proj, out_proj: The projections, as plain ``nn.Linear``.
    """

    def __init__(
        self,
        q_proj: nn.Linear,
        k_proj: nn.Linear,
        v_proj: nn.Linear,
        out_proj: nn.Linear,
        *,
        num_heads: int,
        dropout: float,
        batch_first: bool,
    ) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = q_proj, k_proj, v_proj, out_proj
        self.num_heads = num_heads
        self.head_dim = q_proj.out_features // num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.scale = 1.0 / math.sqrt(self.head_dim)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> TraceableMultiheadAttention:
        """The twin of ``mha``, sharing its tensors.

        Raises:
            TraceError: ``mha`` uses ``add_bias_kv`` or ``add_zero_attn``.
        """
        if mha.bias_k is not None or mha.add_zero_attn:
            raise TraceError(
                "trace_into: nn.MultiheadAttention with add_bias_kv or add_zero_attn has no "
                "traceable twin in bitscout; leave it out of trace_into (it then stays in float)"
            )
        size = mha.embed_dim
        if mha.in_proj_weight is not None:
            weights = [_rows(mha.in_proj_weight, i, size) for i in range(3)]
        else:
            weights = [mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight]
        biases = [_rows(mha.in_proj_bias, i, size) for i in range(3)]
        q, k, v = (_linear(w, b) for w, b in zip(weights, biases))  # type: ignore[arg-type]
        out = _linear(mha.out_proj.weight, mha.out_proj.bias)
        twin = cls(q, k, v, out, num_heads=mha.num_heads, dropout=mha.dropout, batch_first=mha.batch_first)
        twin.train(mha.training)
        return twin

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Same arguments and results as ``nn.MultiheadAttention.forward``."""
        if not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        heads = (-1, self.num_heads, self.head_dim)
        q = self.q_proj(query).unflatten(-1, heads[1:]).transpose(1, 2)
        k = self.k_proj(key).unflatten(-1, heads[1:]).transpose(1, 2)
        v = self.v_proj(value).unflatten(-1, heads[1:]).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        if attn_mask is not None:
            scores = scores + _additive(attn_mask, self.num_heads)
        if key_padding_mask is not None:
            scores = scores + _additive(key_padding_mask, self.num_heads)[:, None, None, :]
        weights = F.dropout(torch.softmax(scores, dim=-1), p=self.dropout, training=self.training)
        out = self.out_proj(torch.matmul(weights, v).transpose(1, 2).flatten(2))
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        return out, weights.mean(dim=1) if average_attn_weights else weights


class TraceableEncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` on torch's slow path, with a traceable attention."""

    def __init__(self, layer: nn.TransformerEncoderLayer) -> None:
        super().__init__()
        self.self_attn = TraceableMultiheadAttention.from_torch(layer.self_attn)
        self.linear1, self.dropout, self.linear2 = layer.linear1, layer.dropout, layer.linear2
        self.norm1, self.norm2 = layer.norm1, layer.norm2
        self.dropout1, self.dropout2 = layer.dropout1, layer.dropout2
        self.activation: Callable[[torch.Tensor], torch.Tensor] = layer.activation
        self.norm_first = layer.norm_first
        self.train(layer.training)

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """Same arguments and result as ``nn.TransformerEncoderLayer.forward``."""
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask)
            return x + self._ff_block(self.norm2(x))
        x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask))
        return self.norm2(x + self._ff_block(x))

    def _sa_block(self, x: torch.Tensor, mask: Any, padding: Any) -> torch.Tensor:
        out = self.self_attn(x, x, x, attn_mask=mask, key_padding_mask=padding, need_weights=False)[0]
        return self.dropout1(out)

    def _ff_block(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TraceableEncoder(nn.Module):
    """``nn.TransformerEncoder`` as a plain loop over its (traceable) layers."""

    def __init__(self, encoder: nn.TransformerEncoder, layers: Sequence[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.norm = encoder.norm
        self.train(encoder.training)

    def forward(
        self,
        src: torch.Tensor,
        mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool | None = None,
    ) -> torch.Tensor:
        """Same arguments and result as ``nn.TransformerEncoder.forward``."""
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask)
        return out if self.norm is None else self.norm(out)


#: The names ``trace_into`` accepts, and what each traces into.
TRACE_INTO_NAMES: dict[str, str] = {
    "TransformerEncoder": "nn.TransformerEncoder and its layers (attention included)",
    "TransformerEncoderLayer": "nn.TransformerEncoderLayer (attention included)",
    "MultiheadAttention": "nn.MultiheadAttention only",
}


def traceable_view(model: nn.Module, trace_into: Sequence[str]) -> nn.Module:
    """``model`` with the modules named in ``trace_into`` replaced by traceable twins.

    Naming a module also traces into the torch containers around it (an encoder layer
    is reached only through its ``nn.TransformerEncoder``) and into its attention.
    Modules on the way are shallow copies; every tensor is shared with ``model``, which
    is returned itself when nothing is replaced.

    Args:
        model: The model.
        trace_into: Class names, from :data:`TRACE_INTO_NAMES`.

    Raises:
        TraceError: A name is not one of :data:`TRACE_INTO_NAMES`.
    """
    unknown = [name for name in trace_into if name not in TRACE_INTO_NAMES]
    if unknown:
        listed = ", ".join(f"{name!r} ({what})" for name, what in TRACE_INTO_NAMES.items())
        raise TraceError(
            f"trace_into: unknown module class(es) {unknown}; bitscout can trace into {listed}. "
            "Modules of your own are always traced into"
        )
    wanted = set(trace_into)
    # Tracing into a layer reaches its attention; into an encoder, its layers.
    if "TransformerEncoder" in wanted:
        wanted.add("TransformerEncoderLayer")
    if "TransformerEncoderLayer" in wanted:
        wanted.add("MultiheadAttention")

    def visit(module: nn.Module) -> nn.Module:
        if isinstance(module, nn.MultiheadAttention) and "MultiheadAttention" in wanted:
            return TraceableMultiheadAttention.from_torch(module)
        if isinstance(module, nn.TransformerEncoderLayer) and "TransformerEncoderLayer" in wanted:
            return TraceableEncoderLayer(module)
        children = {name: visit(child) for name, child in module._modules.items() if child is not None}
        changed = {name: child for name, child in children.items() if child is not module._modules[name]}
        if not changed:
            return module
        if isinstance(module, nn.TransformerEncoder):
            return TraceableEncoder(module, list(changed.get("layers", module.layers)))
        view = copy.copy(module)
        view.__dict__["_modules"] = {**module._modules, **changed}
        return view

    return visit(model)
