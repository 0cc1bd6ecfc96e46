"""Export and verify a trial of a search run folder (what ``bitscout export/verify`` do)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from bitscout.config import check_outputs_are_ours, check_outputs_spare_inputs
from bitscout.errors import ExportError
from bitscout.export._hls import HLSProject
from bitscout.export._pytorch import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    METADATA_FILE,
    ExportResult,
    check_export_folder,
    export_model,
)
from bitscout.export._types import PYTORCH_INSTEAD
from bitscout.export._verify import VerifyReport, verify
from bitscout.quant import (
    CALIBRATION_FILE,
    Calibration,
    LayerQuantConfig,
    parse_layer_config,
    prepare_ptq,
    resolve_config,
)

__all__ = ["ChosenTrial", "choose_trial", "export_run", "verify_run", "RUN_CONFIG_FILE"]

RUN_CONFIG_FILE = "config.toml"


@dataclass(frozen=True)
class ChosenTrial:
    """The trial picked from a run, and why.

    Attributes:
        number: The trial number.
        record: Its record (``bitscout.study.TrialRecord``).
        reason: How it was chosen (``"the best trial"``, ``"--trial 7"``, ...).
    """

    number: int
    record: Any
    reason: str


def choose_trial(run_dir: Path, trial: int | None = None) -> ChosenTrial:
    """Pick a trial of a run: the one asked for, the best, or the Pareto member with the
    best accuracy (said so in ``reason``).

    Raises:
        ExportError: The trial does not exist or did not complete, or the run has none.
    """
    from bitscout.study import SearchResult

    # A best.json or log.json of another kind (train's metrics) would fail to parse.
    check_outputs_are_ours(Path(run_dir), f"run folder {run_dir}", reading=True)
    result = SearchResult.load(Path(run_dir))
    if trial is not None:
        for record in result.trials:
            if record.number == trial:
                if not record.is_complete:
                    raise ExportError(f"trial {trial} of {run_dir} is {record.state}, not COMPLETE; pick a complete one")
                return ChosenTrial(trial, record, f"trial {trial} (asked for)")
        numbers = sorted(t.number for t in result.complete)
        raise ExportError(f"{run_dir} has no trial {trial}; its complete trials are {numbers}")
    if not result.is_multi_objective:
        best = result.best
        if best is None:
            raise ExportError(f"{run_dir} has no complete trial to export")
        if result.has_constraints and not result.best_is_feasible:
            # The "best" is then the least-violating trial (the search's summary flags it).
            numbers = sorted(t.number for t in result.complete)
            if not best.is_complete:
                raise ExportError(
                    f"no trial of {run_dir} meets its constraints, and the least-violating one, "
                    f"trial {best.number}, was never evaluated (skipped as infeasible from its "
                    "configuration); relax a bound in [search.strategy.constraints] and search "
                    + (f"again, or export a complete trial with --trial N (complete: {numbers})" if numbers else "again")
                )
            return ChosenTrial(
                best.number,
                best,
                f"trial {best.number}, the least-violating trial: NO trial of the run meets its "
                "constraints (relax a bound and search again, or pick one with --trial N)",
            )
        return ChosenTrial(best.number, best, f"trial {best.number}, the best trial of the run")
    pareto = result.pareto
    if not pareto:
        raise ExportError(f"{run_dir} has no complete trial to export")
    if not all("accuracy" in t.software_metrics for t in pareto):
        numbers = [t.number for t in pareto]
        raise ExportError(
            f"{run_dir} is a multi-objective run with a Pareto set of trials {numbers} and no "
            "accuracy to choose by; pick one with --trial N"
        )
    chosen = max(pareto, key=lambda t: (t.software_metrics["accuracy"], -t.number))
    others = ", ".join(str(t.number) for t in pareto)
    return ChosenTrial(
        chosen.number,
        chosen,
        f"trial {chosen.number}, the most accurate member of the Pareto set (trials {others}); "
        "pick another with --trial N",
    )


def _load(run_dir: Path) -> tuple[Any, dict[str, Any]]:
    from bitscout.config import ConfigOverrides, load_config
    from bitscout.experiment import Experiment

    path = Path(run_dir) / RUN_CONFIG_FILE
    if not path.is_file():
        raise ExportError(f"{path} does not exist: {run_dir} is not a search run folder")
    # Export works on the CPU whatever the search ran on: a run searched on a GPU
    # machine exports on one without CUDA.
    config = load_config(path, ConfigOverrides(accelerator="cpu"))
    with open(path, "rb") as fh:
        raw = tomllib.load(fh)
    return Experiment.from_config(config), raw


def _layer_configs(record: Any, traced: Any) -> dict[str, LayerQuantConfig | None]:
    configs: dict[str, LayerQuantConfig | None] = {}
    for name, entry in record.sampled_config.items():
        if name not in traced.table.names():
            raise ExportError(f"trial {record.number} quantizes layer {name!r}, which the model lacks")
        if entry == "float":
            configs[name] = None
        else:
            configs[name] = parse_layer_config(
                entry,
                where=f"trial {record.number}, layer {name}",
                tensors=traced.table[name].tensors,
                op=traced.table[name].op,
            )
    return configs


@dataclass(frozen=True)
class _Candidate:
    """The float model a trial was evaluated on, and its config with every range fitted."""

    model: torch.nn.Module
    configs: dict[str, LayerQuantConfig | None]
    folded: dict[str, str]
    calibration: Calibration


def _candidate(run_dir: Path, experiment: Any, record: Any) -> _Candidate:
    """What the search evaluated for ``record``: the same BatchNorm folding, the same
    calibration (the run's calibration.json; computed again, identically, for a run
    that has none) and the range-calibrated formats resolved from them."""
    config = experiment.config
    model = experiment.model.eval()
    data = experiment.dataset
    eval_mode = config.search is None or config.search.strategy.eval_mode
    calibration_x = data.train.x[: config.calibration_samples]
    prepared = prepare_ptq(
        model,
        data.train.x[: config.batch_size],
        calibration_x,
        fold_bn=config.fold_bn and eval_mode,
        observer=config.calibration_observer,
        percentile=config.calibration_percentile,
        batch_size=config.batch_size,
        source=f"train[:{len(calibration_x)}]",
    )
    saved = Path(run_dir) / CALIBRATION_FILE
    calibration = Calibration.load(saved) if saved.is_file() else prepared.calibration
    configs = _layer_configs(record, prepared.traced)
    return _Candidate(
        prepared.traced.gm, resolve_config(prepared.traced, configs, calibration), prepared.folded, calibration
    )


def export_run(
    run_dir: Path,
    *,
    trial: int | None = None,
    out: Path | None = None,
    format: Literal["pytorch", "hls4ml"] = "pytorch",
) -> tuple[ExportResult, ChosenTrial]:
    """Export a trial of a search run (the best by default).

    Args:
        run_dir: The run folder ``bitscout search`` wrote.
        trial: The trial number; ``None``: the best (for a Pareto set, the most accurate).
        out: The export folder; default ``<run_dir>/export/trial_<N>``.
        format: ``"pytorch"`` or ``"hls4ml"``.

    Returns:
        What was written, and the trial chosen.
    """
    run_dir = Path(run_dir)
    chosen = choose_trial(run_dir, trial)
    experiment, raw = _load(run_dir)
    return _export(run_dir, experiment, raw, chosen, out, format), chosen


def _export(
    run_dir: Path,
    experiment: Any,
    raw: dict[str, Any],
    chosen: ChosenTrial,
    out: Path | None,
    format: Literal["pytorch", "hls4ml"],
) -> ExportResult:
    data = experiment.dataset
    x_all = torch.cat([data.train.x, data.val.x, data.test.x])
    if not len(x_all):
        raise ExportError(f"the data set of {run_dir} has no samples to trace the model with")
    # The training split may be empty (data given for evaluation only): trace on what there is.
    batch = x_all[: experiment.config.batch_size]
    out = Path(out) if out is not None else run_dir / "export" / f"trial_{chosen.number}"
    check_outputs_spare_inputs(
        experiment.config, out, (CHECKPOINT_FILE, CONFIG_FILE, METADATA_FILE), f"--out {out}"
    )
    check_export_folder(out)  # before the model is rebuilt and traced
    names_from = experiment.model
    if experiment.config.trace_into:
        # experiment.model is the traceable view: twins in place of the user's attention
        # modules. model.pt must load into the user's own model (docs/export.md), so
        # rebuild it, and the view from it: the twins' projections are then views of its
        # packed in_proj_weight, and the exported values go back into it.
        from bitscout.experiment import build_fresh_model
        from bitscout.graph import traceable_view
        from bitscout.models import load_checkpoint

        names_from = build_fresh_model(experiment.config, data.info).eval()
        if experiment.checkpoint is not None:
            load_checkpoint(names_from, experiment.checkpoint, experiment.config.load_type)
        experiment.model = traceable_view(names_from, experiment.config.trace_into).eval()
    candidate = _candidate(run_dir, experiment, chosen.record)
    # The input range (for a float first layer) comes from every sample on hand: add the
    # sample with the largest magnitude, whatever the shape of a sample.
    largest = x_all.abs().flatten(1).amax(1).argmax()
    example = torch.cat([batch, x_all[largest][None]])
    return export_model(
        candidate.model,
        candidate.configs,
        out,
        example_input=example,
        format=format,
        metrics={**chosen.record.software_metrics, **chosen.record.hardware_metrics},
        metadata={
            "run": str(run_dir),
            "trial": chosen.number,
            "chosen": chosen.reason,
            "values": list(chosen.record.values),
            "model": experiment.config.model,
            "dataset": experiment.config.dataset,
            "checkpoint_of_float_model": None if experiment.checkpoint is None else str(experiment.checkpoint),
            "calibration": candidate.calibration.to_json(),
        },
        base_config=raw,
        folded=candidate.folded,
        names_from=names_from,
    )


def verify_run(
    run_dir: Path,
    *,
    trial: int | None = None,
    samples: int | None = None,
    tolerance: float = 0.0,
    out: Path | None = None,
    split: str = "test",
) -> tuple[VerifyReport, ExportResult, ChosenTrial]:
    """Export a trial to hls4ml, compile its C simulation and compare it with bitscout.

    Args:
        run_dir: The run folder.
        trial: The trial number; ``None``: as :func:`export_run` chooses.
        samples: How many samples of ``split`` to compare (all of it when fewer);
            None: every sample. The C simulation is cheap, and a rare mismatch (a value on
            a rounding tie) can hide in any sample, so the default compares them all.
        tolerance: Largest absolute output difference accepted (0: bit-exact).
        out: The export folder (default as :func:`export_run`).
        split: ``train``, ``val`` or ``test``.
    """
    if samples is not None and samples < 1:
        raise ExportError(f"--samples must be at least 1; got {samples}")
    run_dir = Path(run_dir)
    chosen = choose_trial(run_dir, trial)
    experiment, raw = _load(run_dir)
    try:
        result = _export(run_dir, experiment, raw, chosen, out, "hls4ml")
    except ExportError as exc:
        # "export it with --format pytorch" answers `export`, not `verify`: there is no
        # C simulation to compare with when hls4ml cannot take the model.
        text = str(exc)
        if text.endswith(PYTORCH_INSTEAD):
            raise ExportError(
                text[: -len(PYTORCH_INSTEAD)] + "verify compares bitscout with hls4ml's C simulation, "
                "so this model cannot be verified; `bitscout export` (PyTorch) still exports it."
            ) from None
        raise
    assert result.hls is not None  # format="hls4ml" always builds it
    part = experiment.dataset.split(split)
    x, y = part.x[:samples], part.y[:samples]
    candidate = _candidate(run_dir, experiment, chosen.record)
    report = verify(candidate.model, candidate.configs, HLSProject.load(result.hls.path), x, y, tolerance=tolerance)
    return report, result, chosen
