"""Export a chosen candidate (PyTorch checkpoint, hls4ml project) and verify it.

* :func:`export_model`: a float model and a per-layer config -> weights on their
  fixed-point grids (a plain state dict), the config as ``[passes.quantize]`` TOML, a
  JSON of metadata and metrics, and optionally an hls4ml project whose types come from
  the config (docs/export.md has the mapping).
* :func:`verify`: compiles the hls4ml C simulation and compares it with bitscout's own
  fake-quantized evaluation, output by output.
* :func:`export_run` / :func:`verify_run`: the same for a trial of a search run folder.

hls4ml is optional (``pip install 'bitscout[hls4ml]'``); without it only the PyTorch
export works and the hls4ml functions raise :class:`~bitscout.errors.ExportError`.
"""

from bitscout.export._hls import INSTALL_HINT, HLSProject, build_hls_project, require_hls4ml
from bitscout.export._pytorch import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    HLS_DIR,
    METADATA_FILE,
    ExportResult,
    check_export_folder,
    export_model,
    on_grid,
    quantize_pass_toml,
)
from bitscout.export._run import ChosenTrial, choose_trial, export_run, verify_run
from bitscout.export._types import FLOAT32_EXACT_BITS, FixedType, LayerPlan, TypePlan, plan_types
from bitscout.export._verify import VerifyReport, bitscout_logits, verify

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "FLOAT32_EXACT_BITS",
    "HLS_DIR",
    "INSTALL_HINT",
    "METADATA_FILE",
    "ChosenTrial",
    "ExportResult",
    "FixedType",
    "HLSProject",
    "LayerPlan",
    "TypePlan",
    "VerifyReport",
    "bitscout_logits",
    "build_hls_project",
    "choose_trial",
    "export_run",
    "check_export_folder",
    "export_model",
    "on_grid",
    "plan_types",
    "quantize_pass_toml",
    "require_hls4ml",
    "verify",
    "verify_run",
]
