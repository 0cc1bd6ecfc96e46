"""``bitscout quantize CONFIG [--load CKPT]``: apply ``[passes.quantize]`` once.

Loads the data set and the model (with its checkpoint), folds BatchNorm (unless
``fold_bn = false``), traces the model, calibrates activation ranges on
``calibration_samples`` training samples, applies the config's ``[passes.quantize]`` section with :func:`bitscout.quant.quantize` and prints
the validation accuracy, balanced accuracy and loss of the float and the quantized
model, then the node-by-node table of what was quantized and how.
"""

from __future__ import annotations

import argparse
import sys

from bitscout.cli._common import add_config_overrides, config_from_args
from bitscout.errors import ConfigError
from bitscout.experiment import Experiment
from bitscout.quant import Quantizer, format_quant_table, prepare_ptq, resolve_config, resolve_pass
from bitscout.training import EvalResult, evaluate

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``quantize`` subcommand."""
    parser = subparsers.add_parser(
        "quantize",
        help="apply [passes.quantize] once and compare accuracy before and after",
        description=(
            "Apply the config's [passes.quantize] section to the model (checkpoint from "
            "load_name or --load) and print accuracy and loss on the validation split "
            "before and after, with the node-by-node table of what was quantized."
        ),
    )
    add_config_overrides(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Quantize once, print the comparison and the table; 0 on success."""
    config = config_from_args(args)
    pass_cfg = config.passes.quantize
    if pass_cfg is None:
        where = f" {config.source}" if config.source is not None else ""
        raise ConfigError(
            f"the config{where} has no [passes.quantize] section, so there is nothing to apply; "
            "add one (by = \"type\" or \"name\", with [passes.quantize.<key>.config] tables)"
        )
    experiment = Experiment.from_config(config)
    if experiment.checkpoint is None:
        print(
            "warning: no checkpoint (load_name or --load): the model is untrained, so its "
            "accuracy says little",
            file=sys.stderr,
        )
    val = experiment.dataset.split("val")
    x = val.x.to(experiment.device)
    calibration_x = experiment.dataset.train.x[: config.calibration_samples].to(experiment.device)
    prepared = prepare_ptq(
        experiment.model,
        x[: config.batch_size],
        calibration_x,
        fold_bn=config.fold_bn,
        observer=config.calibration_observer,
        percentile=config.calibration_percentile,
        batch_size=config.batch_size,
        source=f"train[:{len(calibration_x)}]",
    )
    traced, calibration = prepared.traced, prepared.calibration
    layer_configs = resolve_pass(pass_cfg, traced.table)
    quantized = Quantizer(traced, calibration=calibration).build(layer_configs)

    num_classes = experiment.dataset.info.num_classes
    before = evaluate(experiment.model, x, val.y, batch_size=config.batch_size, num_classes=num_classes)
    after = evaluate(quantized, x, val.y, batch_size=config.batch_size, num_classes=num_classes)

    checkpoint = experiment.checkpoint if experiment.checkpoint is not None else "none (untrained)"
    print(f"model {config.model} on {config.dataset}, checkpoint {checkpoint}")
    print(f"validation split: {len(val)} samples, device {experiment.device}")
    print()
    print(_comparison(before, after))
    print()
    quantized_count = sum(1 for c in layer_configs.values() if c is not None)
    print(f"[passes.quantize] by {pass_cfg.by}: {quantized_count} of {len(traced.table)} quantizable nodes quantized")
    if prepared.folded:
        print("BatchNorm folded into: " + ", ".join(f"{n} ({bn})" for n, bn in prepared.folded.items()))
    print(
        f"calibration: {calibration.observer} observer on {calibration.samples} training samples "
        "(range-calibrated formats shown resolved)"
    )
    from bitscout.report import describe_formats

    # Fixed point in the notation of the search summary and the report (`8b (4 frac)`).
    resolved = resolve_config(traced, layer_configs, calibration)
    print(format_quant_table(traced.table, resolved, folded=prepared.folded, describe=describe_formats))
    return 0


def _comparison(before: EvalResult, after: EvalResult) -> str:
    rows = [
        ("", "accuracy", "balanced_accuracy", "loss"),
        ("float", f"{before.accuracy:.4f}", f"{before.balanced_accuracy:.4f}", f"{before.loss:.4f}"),
        ("quantized", f"{after.accuracy:.4f}", f"{after.balanced_accuracy:.4f}", f"{after.loss:.4f}"),
        (
            "change",
            f"{after.accuracy - before.accuracy:+.4f}",
            f"{after.balanced_accuracy - before.balanced_accuracy:+.4f}",
            f"{after.loss - before.loss:+.4f}",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)).rstrip()
        for row in rows
    )
