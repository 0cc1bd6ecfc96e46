"""Compare the hls4ml C simulation with bitscout's fake-quantized evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from bitscout.errors import ExportError
from bitscout.export._hls import HLSProject
from bitscout.graph import trace
from bitscout.quant import LayerQuantConfig, Quantizer
from bitscout.training import model_device

__all__ = ["VerifyReport", "verify", "bitscout_logits"]


@dataclass(frozen=True)
class VerifyReport:
    """How the hls4ml C simulation compares with bitscout on the same samples.

    Attributes:
        samples: Samples compared.
        identical_top1: Fraction of samples with the same top-1 class on both sides.
        max_abs_diff: Largest absolute difference over every output value.
        differing_samples: Samples with any output value differing by more than the tolerance.
        accuracy_bitscout: bitscout's top-1 accuracy (None without labels).
        accuracy_hls4ml: the C simulation's top-1 accuracy (None without labels).
        tolerance: The largest absolute output difference accepted.
        notes: Why the two may differ by construction, node by node (empty: exact by
            construction).
    """

    samples: int
    identical_top1: float
    max_abs_diff: float
    differing_samples: int
    accuracy_bitscout: float | None
    accuracy_hls4ml: float | None
    tolerance: float
    notes: tuple[str, ...] = ()

    @property
    def agree(self) -> bool:
        """True when every output value agrees within the tolerance."""
        return self.max_abs_diff <= self.tolerance

    def summary(self) -> str:
        """The report as text: the caveats, the counts and the verdict (``AGREE``)."""
        lines = []
        if self.notes:
            lines.append("bit-exactness is NOT guaranteed by construction:")
            lines += [f"  - {note}" for note in self.notes]
        else:
            lines.append("bit-exact by construction (every type copied or lossless)")
        lines.append(f"samples compared:        {self.samples}")
        lines.append(f"identical top-1:         {self.identical_top1:.4%}")
        lines.append(f"max |output difference|: {self.max_abs_diff:.6g} (tolerance {self.tolerance:g})")
        lines.append(f"samples differing:       {self.differing_samples}")
        if self.accuracy_bitscout is not None:
            lines.append(f"accuracy bitscout:       {self.accuracy_bitscout:.4f}")
            lines.append(f"accuracy hls4ml:         {self.accuracy_hls4ml:.4f}")
        lines.append("AGREE" if self.agree else "DISAGREE")
        return "\n".join(lines)


def bitscout_logits(
    model: nn.Module, config: Mapping[str, LayerQuantConfig | None], x: torch.Tensor
) -> np.ndarray:
    """bitscout's fake-quantized outputs of ``model`` under ``config``, as float64.

    Runs on the model's device (``x`` is moved there); the result is on the host.
    """
    model = model.eval()
    x = x.to(model_device(model))
    candidate = Quantizer(trace(model, x[:2])).build(dict(config))
    with torch.inference_mode():
        out = candidate(x)
    return out.double().cpu().numpy().reshape(len(x), -1)


def verify(
    model: nn.Module,
    config: Mapping[str, LayerQuantConfig | None],
    project: HLSProject,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    tolerance: float = 0.0,
) -> VerifyReport:
    """Compile the project's C simulation and compare it with bitscout on ``x``.

    bitscout's outputs are first cast to the project's output type (lossless by
    construction, so normally a no-op), then compared value by value.

    Args:
        model: The float model of the candidate (or the exported one: quantizing weights
            already on their grids changes nothing).
        config: Node name -> LayerQuantConfig or None, as evaluated by bitscout.
        project: The exported hls4ml project (:func:`build_hls_project` or
            :meth:`HLSProject.load`).
        x: Samples (a batch).
        y: Their labels, for the accuracies.
        tolerance: Largest absolute output difference accepted (0: bit-exact).

    Raises:
        ExportError: The project does not compile, or gives outputs of another shape.
    """
    if tolerance < 0:
        raise ExportError(f"the tolerance must be >= 0; got {tolerance}")
    ours = project.plan.output_type.quantize(bitscout_logits(model, config, x))
    theirs = project.predict(x)
    if theirs.shape != ours.shape:
        raise ExportError(
            f"the hls4ml project gives outputs of shape {theirs.shape}, bitscout {ours.shape}; "
            "was it exported from this model?"
        )
    diff = np.abs(theirs - ours)
    top_ours, top_theirs = ours.argmax(1), theirs.argmax(1)
    acc_ours = acc_theirs = None
    if y is not None:
        labels = y.cpu().numpy()
        acc_ours = float((top_ours == labels).mean())
        acc_theirs = float((top_theirs == labels).mean())
    return VerifyReport(
        samples=len(x),
        identical_top1=float((top_ours == top_theirs).mean()),
        max_abs_diff=float(diff.max()) if diff.size else 0.0,
        differing_samples=int((diff > tolerance).any(axis=1).sum()),
        accuracy_bitscout=acc_ours,
        accuracy_hls4ml=acc_theirs,
        tolerance=tolerance,
        notes=tuple(project.plan.notes),
    )
