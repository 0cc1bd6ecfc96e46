"""Export of a chosen candidate: weights on their grids, its config, its metrics."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import tomli_w
import torch
from torch import nn

import bitscout
from bitscout.errors import ExportError
from bitscout.export._hls import HLSProject, build_hls_project, require_hls4ml
from bitscout.export._types import check_hls_nodes
from bitscout.graph import TracedModel, trace
from bitscout.quant import LayerQuantConfig, resolve_config

__all__ = [
    "ExportResult",
    "export_model",
    "on_grid",
    "quantize_pass_toml",
    "check_export_folder",
    "CHECKPOINT_FILE",
    "METADATA_FILE",
    "CONFIG_FILE",
    "HLS_DIR",
]

CHECKPOINT_FILE = "model.pt"
METADATA_FILE = "export.json"
CONFIG_FILE = "quantize.toml"
HLS_DIR = "hls4ml_prj"


def check_export_folder(out_dir: Path) -> None:
    """Refuse an export folder holding files of these names that no export wrote.

    An export replaces ``model.pt``, ``quantize.toml``, ``export.json`` and ``hls4ml_prj/``.
    Where ``export.json`` is an export's (it records ``bitscout_version`` and names
    ``model.pt`` as its checkpoint), the folder is an earlier export and is replaced as a
    whole (exporting again). Otherwise any of those files is the user's (a state dict of
    their own named ``model.pt``, a TOML of theirs) and nothing is written.

    Raises:
        ExportError: Names the file and what to do.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return
    ours = _is_export_metadata(out_dir / METADATA_FILE)
    for name in (METADATA_FILE, CHECKPOINT_FILE, CONFIG_FILE, HLS_DIR):
        path = out_dir / name
        if path.exists() and not ours:
            why = (
                "it does not record an export" if name == METADATA_FILE
                else f"the folder has no {METADATA_FILE} of an export beside it"
            )
            raise ExportError(
                f"{path} was not written by bitscout export ({why}), and the export would replace "
                "it; choose another folder (--out DIR), or move the file"
            )


def _is_export_metadata(path: Path) -> bool:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(meta, dict) and "bitscout_version" in meta and meta.get("checkpoint") == CHECKPOINT_FILE


@dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        out_dir: The export folder.
        checkpoint: The state dict with weights and biases on their grids
            (``torch.load(path, weights_only=True)`` gives a plain state dict).
        metadata: The JSON of metadata (config per layer, metrics, source).
        config_toml: The ``[passes.quantize]`` TOML, by name.
        model: The exported model (weights on their grids).
        hls: The hls4ml project, for ``format="hls4ml"``.
    """

    out_dir: Path
    checkpoint: Path
    metadata: Path
    config_toml: Path
    model: nn.Module
    hls: HLSProject | None = None


def on_grid(
    model: nn.Module,
    config: Mapping[str, LayerQuantConfig | None],
    *,
    traced: TracedModel | None = None,
    example_input: torch.Tensor | None = None,
) -> nn.Module:
    """A copy of ``model`` whose quantized weights and biases are on their grids.

    Each weight and bias with a format in ``config`` is replaced by its quantized value,
    so the float model computes with the very numbers the fake-quantized one uses, and
    quantizing them again changes nothing. ``model`` is not modified.

    Args:
        model: The float model.
        config: Node name -> LayerQuantConfig or None (float).
        traced: The traced model (else ``example_input`` is needed to trace it).
        example_input: A batch of inputs, to trace the model.

    Returns:
        The copy, in eval mode.
    """
    if traced is None:
        if example_input is None:
            raise TypeError("on_grid() needs traced or example_input")
        traced = trace(model, example_input)
    copied = copy.deepcopy(model).eval()
    paths = {id(m): name for name, m in model.named_modules()}
    for name, layer_config in config.items():
        if layer_config is None:
            continue
        module = traced.gm._modules.get(name)
        module = getattr(module, "float_module", module)
        if module is None or id(module) not in paths:
            continue  # a function call (matmul, add): no parameters to place
        target = copied.get_submodule(paths[id(module)])
        with torch.no_grad():
            for role in ("weight", "bias"):
                fmt = layer_config.tensor(role)
                param = getattr(target, role, None)
                if fmt is not None and isinstance(param, torch.Tensor):
                    param.copy_(fmt.quantize(param))
    return copied


def _named_as(
    traced: nn.Module, original: nn.Module, state: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``state`` (keyed as ``traced``'s) keyed as ``original``'s state dict.

    The traced module holds the original's very parameters and buffers (tracing copies
    none), so each tensor is matched by identity. When one of ``original``'s is not in
    ``traced`` (a model rebuilt, not traced), ``state`` is returned unchanged.
    """
    traced_items = list(traced.state_dict(keep_vars=True).items())
    where = {id(t): key for key, t in traced_items}
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in original.state_dict(keep_vars=True).items():
        source = where.get(id(tensor))
        if source is not None and source in state:
            renamed[key] = state[source]
            continue
        packed = _packed(tensor, traced_items, state)
        if packed is None:
            return dict(state)
        renamed[key] = packed
    return renamed


def _packed(
    tensor: torch.Tensor, traced_items: list[tuple[str, torch.Tensor]], state: Mapping[str, torch.Tensor]
) -> torch.Tensor | None:
    """``tensor`` rebuilt from the traced tensors that are views of parts of it, or None.

    A traced twin holds parts of a packed tensor as views (``nn.MultiheadAttention``'s
    ``in_proj_weight`` as the ``q_proj``, ``k_proj``, ``v_proj`` weights): their exported
    values go back to where each view lies in it, so that the user's model loads them.
    None unless the views cover all of it.
    """
    base = tensor.detach()
    if not base.is_contiguous() or base.numel() == 0:
        return None
    out = base.clone().reshape(-1)
    pointer = base.untyped_storage().data_ptr()
    covered = 0
    for key, part in traced_items:
        if key not in state or not part.is_contiguous() or part.untyped_storage().data_ptr() != pointer:
            continue
        start = part.storage_offset() - base.storage_offset()
        if start < 0 or start + part.numel() > base.numel():
            continue
        out[start : start + part.numel()] = state[key].detach().reshape(-1).to(out.dtype)
        covered += part.numel()
    return out.reshape(base.shape) if covered == base.numel() else None


def quantize_pass_toml(
    config: Mapping[str, LayerQuantConfig | None],
    layer_names: list[str],
    base: Mapping[str, Any] | None = None,
) -> str:
    """The config as a ``[passes.quantize]`` TOML by name (float layers: ``name = "NA"``).

    Args:
        config: Node name -> LayerQuantConfig or None.
        layer_names: Every quantizable layer, so that each gets an explicit entry.
        base: Top-level keys to keep (a run's resolved config: model, dataset, ...);
            its ``search`` and ``passes`` sections are replaced.
    """
    doc: dict[str, Any] = {k: v for k, v in (base or {}).items() if k not in ("search", "passes")}
    entries: dict[str, Any] = {"by": "name", "default": {"config": {"name": "NA"}}}
    for name in layer_names:
        layer_config = config.get(name)
        entries[name] = {"config": {"name": "NA"} if layer_config is None else layer_config.to_dict()}
    doc["passes"] = {"quantize": entries}
    return tomli_w.dumps(doc)


def export_model(
    model: nn.Module,
    config: Mapping[str, LayerQuantConfig | None],
    out_dir: Path,
    *,
    example_input: torch.Tensor,
    format: Literal["pytorch", "hls4ml"] = "pytorch",
    metrics: Mapping[str, float] | None = None,
    metadata: Mapping[str, Any] | None = None,
    base_config: Mapping[str, Any] | None = None,
    rounding: str = "AP_RND_CONV",
    saturation: str = "AP_SAT",
    folded: Mapping[str, str] | None = None,
    names_from: nn.Module | None = None,
) -> ExportResult:
    """Export a float model and a per-layer config: weights on grids, config, metrics.

    Writes ``model.pt`` (a plain state dict), ``export.json`` (the config per layer,
    metrics and ``metadata``), ``quantize.toml`` (the config as ``[passes.quantize]`` by
    name, so that ``bitscout quantize`` reproduces it) and, for ``format="hls4ml"``, the
    hls4ml project in ``hls4ml_prj/`` with the types of docs/export.md.

    Args:
        model: The float model (not modified).
        config: Node name -> LayerQuantConfig or None (float).
        out_dir: The export folder (created).
        example_input: A batch of inputs (tracing; the hls4ml input shape and range).
        format: ``"pytorch"`` or ``"hls4ml"`` (the PyTorch files are written for both).
        metrics: The candidate's metrics, for the summary.
        metadata: Other plain values to record (model name, dataset, run, trial, ...).
        base_config: A resolved config (dict) whose top-level keys go into quantize.toml.
        rounding: hls4ml rounding mode of the copied types (``AP_RND_CONV`` matches bitscout).
        saturation: hls4ml overflow mode of the copied types (``AP_SAT`` matches bitscout).
        folded: Layer -> the BatchNorm folded into it, when ``model`` is a folded model
            (:func:`bitscout.graph.fold_batchnorm`). Its checkpoint then holds the folded
            weights, which the original architecture (with BatchNorm) cannot load, so
            ``quantize.toml`` keeps the float checkpoint and ``fold_bn = true``, which
            rebuild the same folded model.
        names_from: The user's model that ``model`` was traced from (a run exports the
            traced module, whose submodules are named after graph nodes: ``f_0`` for
            ``f.0``). ``model.pt`` then takes that model's parameter names, so that
            ``names_from.load_state_dict`` reads it. Ignored when ``folded`` is given,
            or when ``model``'s tensors are not all ``names_from``'s own.

    Range-calibrated formats (``frac_width = "auto"``, per-tensor ``int``) should come
    resolved (:func:`bitscout.quant.resolve_config`): the hls4ml types and
    ``quantize.toml`` then name concrete frac widths and scales.

    Raises:
        ExportError: ``format`` is unknown, hls4ml is missing for ``format="hls4ml"``, the
            folder holds files of the export's names that no export wrote
            (:func:`check_export_folder`), or the model cannot be expressed in hls4ml.
    """
    if format not in ("pytorch", "hls4ml"):
        raise ExportError(f"export format must be 'pytorch' or 'hls4ml'; got {format!r}")
    if format == "hls4ml":
        require_hls4ml()  # fail before writing anything
    check_export_folder(out_dir)
    # A GraphModule was traced by bitscout already, which warned then of the layers it
    # leaves in float (under the model's own name, not "GraphModule").
    traced = trace(model, example_input, warn=not isinstance(model, torch.fx.GraphModule))
    if format == "hls4ml":
        check_hls_nodes(traced.gm)  # before model.pt and quantize.toml are written
    config = dict(config)
    unknown = [name for name in config if name not in traced.table.names()]
    if unknown:
        raise ExportError(
            f"the config names layers the model lacks: {', '.join(unknown)}; its quantizable "
            f"layers are {', '.join(traced.table.names())}"
        )
    # Weights and biases of "auto"/per-tensor int formats fit their parameters: name the
    # fitted formats, so that the hls4ml types and quantize.toml are concrete.
    config = resolve_config(traced, config)
    grid_model = on_grid(model, config, traced=traced)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / name for name in (CHECKPOINT_FILE, CONFIG_FILE, HLS_DIR) if not (out_dir / name).exists()]
    try:
        return _write_export(
            out_dir, model, config, traced, grid_model, format=format, example_input=example_input,
            metrics=metrics, metadata=metadata, base_config=base_config, folded=folded,
            names_from=names_from, rounding=rounding, saturation=saturation,
        )
    except BaseException:
        # A failure half-way (hls4ml refusing a layer, Ctrl-C) would leave a model.pt
        # without its export.json, which the next export refuses to replace as not its
        # own: take back what this call created.
        for path in written:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


def _write_export(
    out_dir: Path,
    model: nn.Module,
    config: dict[str, LayerQuantConfig | None],
    traced: Any,
    grid_model: nn.Module,
    *,
    format: str,
    example_input: torch.Tensor,
    metrics: Mapping[str, float] | None,
    metadata: Mapping[str, Any] | None,
    base_config: Mapping[str, Any] | None,
    folded: Mapping[str, str] | None,
    names_from: nn.Module | None,
    rounding: str,
    saturation: str,
) -> ExportResult:
    """The files of :func:`export_model`: model.pt, quantize.toml, the hls4ml project, export.json."""
    checkpoint = out_dir / CHECKPOINT_FILE
    state = grid_model.state_dict()
    if names_from is not None and not folded:
        state = _named_as(model, names_from, state)
    torch.save({k: v.detach().cpu() for k, v in state.items()}, checkpoint)
    names = list(traced.table.names())
    toml_path = out_dir / CONFIG_FILE
    # The exported checkpoint replaces the float one: quantizing weights already on their
    # grids changes nothing, so `bitscout quantize quantize.toml` gives the same model.
    if folded:
        base = {**dict(base_config or {}), "fold_bn": True}
    else:
        base = {**dict(base_config or {}), "load_name": str(checkpoint.resolve()), "load_type": "pt"}
    toml_path.write_text(quantize_pass_toml(config, names, base))
    hls = None
    if format == "hls4ml":
        hls = build_hls_project(
            grid_model, config, out_dir / HLS_DIR,
            example_input=example_input, rounding=rounding, saturation=saturation,
        )
    meta: dict[str, Any] = {
        "bitscout_version": bitscout.__version__,
        "format": format,
        "checkpoint": CHECKPOINT_FILE,
        "config_toml": CONFIG_FILE,
        "input_shape": list(example_input.shape[1:]),
        "config": {n: ("float" if config.get(n) is None else config[n].to_dict()) for n in names},  # type: ignore[union-attr]
        "metrics": dict(metrics or {}),
        "folded_batchnorm": dict(folded or {}),
        **dict(metadata or {}),
    }
    if hls is not None:
        meta["hls4ml"] = {
            "project": HLS_DIR,
            "types": {layer.name: {k: t.hls() for k, t in layer.precision.items()} for layer in hls.plan.layers},
            "not_exact_because": hls.plan.notes,
        }
    meta_path = out_dir / METADATA_FILE
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return ExportResult(out_dir, checkpoint, meta_path, toml_path, grid_model, hls)
