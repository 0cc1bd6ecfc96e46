"""Build, write, compile and run the hls4ml project of a quantized candidate."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from bitscout.errors import ExportError
from bitscout.export._types import FixedType, LayerPlan, TypePlan, plan_types
from bitscout.graph import trace
from bitscout.quant import LayerQuantConfig

__all__ = ["HLSProject", "require_hls4ml", "build_hls_project", "PLAN_FILE", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'bitscout[hls4ml]'"
#: The type plan, written next to the hls4ml project so that verify can read it back.
PLAN_FILE = "bitscout_types.json"


def require_hls4ml() -> ModuleType:
    """Import hls4ml, or say how to install it.

    Raises:
        ExportError: hls4ml is not installed.
    """
    try:
        import hls4ml
    except ImportError as exc:
        raise ExportError(
            f"the hls4ml export and verify need the optional hls4ml package ({exc}); "
            f"install it with: {INSTALL_HINT}. Export to PyTorch (--format pytorch) works without it."
        ) from exc
    return hls4ml


@dataclass
class HLSProject:
    """An hls4ml project on disk, with the types bitscout chose for it.

    Attributes:
        path: The project folder (what hls4ml writes: firmware/, build_lib.sh, ...).
        plan: The per-node types and the notes on exactness.
        model: The hls4ml model (a ModelGraph, or a linked project once reloaded).
    """

    path: Path
    plan: TypePlan
    model: Any
    _compiled: bool = False

    def compile(self) -> None:
        """Build the C simulation with g++ (seconds); done once."""
        if self._compiled:
            return
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.model.compile()
        except Exception as exc:  # hls4ml raises a bare Exception with g++'s output
            raise ExportError(f"the hls4ml project in {self.path} failed to compile: {exc}") from exc
        self._compiled = True

    def predict(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """The C simulation's outputs for a batch, as float64 (2-D: samples x outputs)."""
        self.compile()
        data = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        # float64 in and out: the input cast to ap_fixed is then exact, and the outputs
        # (up to 53 significant bits) come back without float32 rounding.
        data = np.ascontiguousarray(data.reshape(len(data), -1), dtype=np.float64)
        out = np.asarray(self.model.predict(data), dtype=np.float64)
        return out.reshape(len(data), -1)

    @classmethod
    def load(cls, path: Path) -> HLSProject:
        """Link an exported project folder (written by :func:`build_hls_project`).

        The project is compiled in ``path`` itself, wherever it was first written.
        """
        hls4ml = require_hls4ml()
        path = Path(path)
        plan_file = path / PLAN_FILE
        if not plan_file.is_file():
            raise ExportError(
                f"{path} is not an hls4ml project exported by bitscout (no {PLAN_FILE}); "
                "export one with `bitscout export RUN --format hls4ml`"
            )
        plan = _plan_from_json(json.loads(plan_file.read_text()))
        model = hls4ml.converters.link_existing_project(str(path))
        # hls4ml compiles the folder its hls4ml_config.yml names as OutputDir: the one the
        # project was written to. A copied or moved project must compile where it lies,
        # not silently verify the original.
        object.__getattribute__(model, "config").config["OutputDir"] = str(path.resolve())
        return cls(path, plan, model)


def _plan_to_json(plan: TypePlan) -> dict[str, Any]:
    return {
        "input_name": plan.input_name,
        "output_name": plan.output_name,
        "layers": [
            {**asdict(layer), "precision": {k: asdict(t) for k, t in layer.precision.items()}}
            for layer in plan.layers
        ],
    }


def _plan_from_json(raw: dict[str, Any]) -> TypePlan:
    layers = []
    for entry in raw["layers"]:
        precision = {k: FixedType(**t) for k, t in entry.pop("precision").items()}
        layers.append(LayerPlan(precision=precision, **entry))
    return TypePlan(layers, raw["input_name"], raw["output_name"])


def build_hls_project(
    model: nn.Module,
    config: dict[str, LayerQuantConfig | None],
    out_dir: Path,
    *,
    example_input: torch.Tensor,
    rounding: str = "AP_RND_CONV",
    saturation: str = "AP_SAT",
) -> HLSProject:
    """Convert a model whose weights are on their grids into an hls4ml project and write it.

    Args:
        model: The float model with weights and biases already on their fixed-point grids
            (see :func:`bitscout.export.on_grid`); not modified.
        config: Node name -> LayerQuantConfig or None (float).
        out_dir: Where hls4ml writes the project.
        example_input: A batch of inputs: its per-sample shape is the model's input
            shape, and its largest magnitude sets the input type when the first layer
            does not quantize its input.
        rounding: Rounding mode for the types copied from the config (``AP_RND_CONV``
            matches bitscout; another one is only useful to see verify fail).
        saturation: Overflow mode for those types (``AP_SAT`` matches bitscout).

    Returns:
        The written project, linked from disk (not compiled yet).

    Raises:
        ExportError: hls4ml is missing, the model has a layer this export does not
            support, or hls4ml built a graph other than the one the types were planned for.
    """
    hls4ml = require_hls4ml()
    model = model.eval()
    traced = trace(model, example_input)
    plan = plan_types(
        traced,
        config,
        input_max_abs=float(example_input.abs().max()),
        rounding=rounding,
        saturation=saturation,
    )
    input_shape = tuple(example_input.shape[1:])
    if len(input_shape) != 1:
        raise ExportError(
            f"the hls4ml export takes models of flat inputs (one dimension per sample); this "
            f"one takes samples of shape {input_shape}. Export it with --format pytorch instead."
        )
    hls_input = _without_reshapes(model)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = hls4ml.utils.config_from_pytorch_model(
            hls_input, input_shape, granularity="name", backend="Vitis"
        )
    names = cfg["LayerName"]
    node_names = {layer.name for layer in plan.layers if layer.kind != "input"}
    inputs = [name for name in names if name not in node_names]
    if len(inputs) != 1:
        raise ExportError(f"hls4ml sees inputs {inputs}; bitscout expects one (internal mismatch)")
    hls_names = {plan.input_name: inputs[0]}
    for layer in plan.layers:
        key = hls_names.get(layer.name, layer.name)
        if layer.kind == "reshape":
            continue  # removed from what hls4ml sees (see _without_reshapes)
        if key not in names:
            raise ExportError(f"hls4ml has no layer {key!r} for node {layer.name!r} (internal mismatch)")
        precision = names[key].setdefault("Precision", {})
        for role, t in layer.precision.items():
            precision[role] = t.hls()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            hls_model = hls4ml.converters.convert_from_pytorch_model(
                hls_input, hls_config=cfg, output_dir=str(out_dir), backend="Vitis", io_type="io_parallel"
            )
        except Exception as exc:  # hls4ml's converter raises bare Exceptions
            raise ExportError(f"hls4ml could not convert the model: {exc}") from exc
        _check_types(hls_model, plan, hls_names)
        # hls4ml would dump the torch module object (and the shape as a Python tuple) into
        # hls4ml_config.yml, which its own safe loader (link_existing_project) then cannot
        # read back: keep plain values.
        hls_model.config.config["PytorchModel"] = str(model)
        hls_model.config.config["InputShape"] = list(input_shape)
        hls_model.write()
    (out_dir / PLAN_FILE).write_text(json.dumps(_plan_to_json(plan), indent=2) + "\n")
    # Linked from disk, as verify will see it: compiling it builds what was written.
    return HLSProject(out_dir, plan, hls4ml.converters.link_existing_project(str(out_dir)))


def _check_types(hls_model: Any, plan: TypePlan, hls_names: dict[str, str]) -> None:
    """Refuse a project whose types or layers are not the ones planned."""
    layers = {layer.name: layer for layer in hls_model.get_layers()}
    for layer in plan.layers:
        key = hls_names.get(layer.name, layer.name)
        if layer.kind == "reshape":
            continue
        if key not in layers:
            raise ExportError(f"hls4ml removed or merged layer {key!r}; its types would not apply")
        for role, t in layer.precision.items():
            got = layers[key].types.get(f"{role}_t")
            want = (t.width, t.integer)
            if got is None or (got.precision.width, got.precision.integer) != want:
                raise ExportError(
                    f"hls4ml gave layer {key!r} the {role} type {got and got.precision} instead "
                    f"of {t.hls()} (internal mismatch)"
                )


def _without_reshapes(model: nn.Module) -> nn.Module:
    """The model without its Flatten/Identity/Dropout nodes, which do nothing to flat
    samples in eval mode: hls4ml does not take Identity, and its channels-last pass fails
    on a Flatten of flat samples. Node names stay those of ``model``."""
    gm = torch.fx.symbolic_trace(model)
    for node in list(gm.graph.nodes):
        if node.op == "call_module" and isinstance(
            gm.get_submodule(str(node.target)), (nn.Flatten, nn.Identity, nn.Dropout)
        ):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    gm.graph.lint()
    return torch.fx.GraphModule(model, gm.graph).eval()
