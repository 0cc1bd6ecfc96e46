"""``bitscout train CONFIG``: train the configured model and save its best checkpoint.

Trains from a fresh initialisation seeded by ``seed`` (or, with ``--load CKPT``, from
that checkpoint's weights) with the config's ``max_epochs``, ``batch_size`` and
``learning_rate`` (Adam, cross-entropy), printing train and validation metrics per epoch,
and saves the weights of the epoch with the best validation accuracy in bitscout's
checkpoint format, with a JSON file of its metrics next to it.

Where it saves (the run folder):

* ``--out DIR``: ``DIR/best.pt`` and ``DIR/best.json``;
* else, with ``--load CKPT``: ``runs/<project>/train/best.pt``. A file given as an input
  is never written: when that is CKPT itself, train refuses and asks for ``--out``;
* else, when the config has ``load_name``: exactly there (``<load_name>`` and
  ``<load_name minus suffix>.json``), so that a later ``bitscout search`` of the same
  config finds the checkpoint where the config says;
* else ``runs/<project>/train/best.pt``.

The folder is checked (writable, not a file) before the data is loaded.

``--if-missing`` skips training when that checkpoint already exists (``make demo``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import bitscout
from bitscout._atomic import atomic_write_text
from bitscout.cli._common import (
    add_config_argument,
    add_override_options,
    check_output_folder,
    config_from_args,
)
from bitscout.config import Config
from bitscout.data import Dataset, load_dataset
from bitscout.experiment import build_fresh_model, resolve_device
from bitscout.errors import CheckpointError
from bitscout.models import is_bitscout_checkpoint, load_checkpoint, save_checkpoint
from bitscout.training import EpochMetrics, evaluate, train

__all__ = ["register", "run", "checkpoint_path"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train the configured model and save its best checkpoint",
        description=(
            "Train the config's model on its dataset (max_epochs, batch_size, "
            "learning_rate, seed; from --load's weights when given) and save the "
            "best-validation-accuracy weights as best.pt with best.json (its metrics): in "
            "--out, else in runs/<project>/train/ when --load is given (never over --load), "
            "else at load_name when the config sets it, else in runs/<project>/train/."
        ),
    )
    add_config_argument(parser)
    add_override_options(parser)
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the checkpoint already exists",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (per-epoch lines still print)"
    )
    parser.set_defaults(func=run)


def checkpoint_path(config: Config, *, load_option: Path | None = None) -> Path:
    """Where ``bitscout train`` saves the checkpoint of ``config`` (see the module doc).

    Args:
        config: The config, overrides applied.
        load_option: The ``--load`` given on the command line, if any: an input, so never
            the place to save.

    Raises:
        CheckpointError: The place to save would be the ``--load`` file itself.
    """
    if config.out is not None:
        path = Path(config.out) / "best.pt"
    elif config.load_name is not None and load_option is None:
        return Path(config.load_name)
    else:
        path = Path("runs") / config.project / "train" / "best.pt"
    if load_option is not None and _same_file(path, Path(load_option)):
        raise CheckpointError(
            f"--load {load_option} is the checkpoint train would save to ({path}); train never "
            "writes over its input: pass --out DIR to save the new checkpoint elsewhere"
        )
    return path


def _check_outputs_are_trains(ckpt: Path, metrics_file: Path, config: Config) -> None:
    """Refuse to write over a checkpoint or metrics file that ``bitscout train`` did not write.

    ``train`` saves at the config's ``load_name``: where that is the user's own weights (a
    plain state dict trained elsewhere, a Lightning checkpoint), training would replace
    them. A checkpoint and metrics of an earlier ``train`` may be replaced (training again).
    """
    how = "--out DIR to save elsewhere"
    if ckpt.is_file() and not is_bitscout_checkpoint(ckpt):
        named = " (the config's load_name)" if config.out is None and config.load_name is not None else ""
        raise CheckpointError(
            f"{ckpt}{named} exists and was not saved by bitscout train (it is not a checkpoint in "
            f"bitscout's format), and training would replace it: pass {how}, or move the file"
        )
    if metrics_file.is_file():
        try:
            content = json.loads(metrics_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError):
            content = None
        if not (isinstance(content, dict) and "best_epoch" in content and "history" in content):
            raise CheckpointError(
                f"{metrics_file} exists and was not written by bitscout train, and training would "
                f"replace it with the checkpoint's metrics: pass {how}, or move the file"
            )


def _same_file(a: Path, b: Path) -> bool:
    a, b = a.expanduser(), b.expanduser()
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def _format_epoch(m: EpochMetrics, epochs: int) -> str:
    width = len(str(epochs))
    return (
        f"epoch {m.epoch:>{width}}/{epochs}  train loss {m.train_loss:.4f} acc {m.train_accuracy:.4f}"
        f"  |  val loss {m.val_loss:.4f} acc {m.val_accuracy:.4f} "
        f"balanced {m.val_balanced_accuracy:.4f}  ({m.seconds:.2f} s)"
    )


def run(args: argparse.Namespace) -> int:
    """Train, print per-epoch metrics, save ``best.pt`` and ``best.json``; 0 on success.

    Ctrl-C after the first finished epoch saves the best epoch so far and returns 130.
    """
    config = config_from_args(args)
    ckpt = checkpoint_path(config, load_option=args.load)
    metrics_file = ckpt.with_suffix(".json")
    if args.if_missing and ckpt.is_file():
        print(f"checkpoint {ckpt} exists; not training again (--if-missing)")
        return 0
    where = f"--out {config.out}" if config.out is not None else "the checkpoint folder"
    check_output_folder(ckpt.parent, where)
    _check_outputs_are_trains(ckpt, metrics_file, config)

    device = resolve_device(config.accelerator)
    dataset = load_dataset(
        config.dataset, path=config.dataset_path, seed=config.seed, label_column=config.label_column
    )
    info = dataset.info
    model = build_fresh_model(config, info)
    if args.load is not None:
        load_checkpoint(model, Path(args.load), config.load_type)
        print(f"starting from the weights of {args.load} (--load)")
    params = sum(p.numel() for p in model.parameters())
    print(f"training {config.model} ({params:,} parameters) on {_data_line(dataset)} on {device}")
    print(
        f"max_epochs {config.max_epochs}, batch_size {config.batch_size}, "
        f"learning_rate {config.learning_rate:g}, seed {config.seed}"
    )
    if info.synthetic:
        print("warning: the dataset is SYNTHETIC: its accuracy says nothing about real data", file=sys.stderr)

    result = train(
        model,
        dataset,
        epochs=config.max_epochs,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        seed=config.seed,
        device=device,
        progress=not args.no_progress,
        on_epoch=lambda m: tqdm.write(_format_epoch(m, config.max_epochs)),
    )
    # A data file of its own splits may have no test split (docs: "a missing test split is
    # empty"): there is then no test accuracy to report, which is not an error.
    test = None
    if len(dataset.test):
        test = evaluate(model, dataset.test.x, dataset.test.y, batch_size=config.batch_size,
                        num_classes=info.num_classes)
    val = result.best_val

    metrics: dict[str, Any] = {"val": val.as_dict(), "test": None if test is None else test.as_dict()}
    save_checkpoint(
        model,
        ckpt,
        {
            "model": config.model,
            "model_options": dict(config.model_options),
            "dataset": config.dataset,
            "metrics": metrics,
            "epoch": result.best_epoch,
            "seed": config.seed,
        },
    )
    summary = {
        "checkpoint": str(ckpt),
        "model": config.model,
        "model_options": dict(config.model_options),
        "dataset": config.dataset,
        "dataset_source": info.source,
        "synthetic_data": info.synthetic,
        "config": str(config.source) if config.source is not None else None,
        "seed": config.seed,
        "max_epochs": config.max_epochs,
        "batch_size": config.batch_size,
        "learning_rate": config.learning_rate,
        "device": str(device),
        "best_epoch": result.best_epoch,
        "interrupted": result.interrupted,
        **metrics,
        "seconds": result.seconds,
        "history": [m.__dict__ for m in result.history],
        "bitscout_version": bitscout.__version__,
    }
    atomic_write_text(metrics_file, json.dumps(summary, indent=2) + "\n")

    if result.interrupted:
        print(
            f"interrupted (Ctrl-C) after epoch {len(result.history)} of {config.max_epochs}: "
            "saving the best epoch so far",
            file=sys.stderr,
        )
    print(
        f"best epoch {result.best_epoch}: val accuracy {val.accuracy:.4f} "
        f"(balanced {val.balanced_accuracy:.4f}, loss {val.loss:.4f}); "
        + (f"test accuracy {test.accuracy:.4f}" if test is not None else "no test split")
        + f"  [{result.seconds:.1f} s]"
    )
    print(f"saved checkpoint: {ckpt}")
    print(f"saved metrics:    {metrics_file}")
    if config.load_type not in (None, "bitscout"):
        print(
            f"note: the checkpoint is in bitscout's format; the config's load_type = "
            f"{config.load_type!r} will not read it: set load_type = \"bitscout\" or remove it",
            file=sys.stderr,
        )
    if (config.out is not None or args.load is not None) and config.load_name is not None and Path(
        config.load_name
    ) != ckpt:
        # The config's load_type applies to --load too: say the option that reads this file.
        load_type = "" if config.load_type in (None, "bitscout") else " --load-type bitscout"
        print(
            f"note: the config's load_name is {config.load_name}; pass --load {ckpt}{load_type} "
            "to use this checkpoint",
            file=sys.stderr,
        )
    return 130 if result.interrupted else 0


def _data_line(dataset: Dataset) -> str:
    """The data set, its split counts and where it came from, each said once.

    A single x/y that bitscout split has the counts in its source already
    (``one.npz (one x/y, split stratified with seed 0: 1077 train / 540 val / 180 test)``);
    a file of its own splits is named once, not as its name and again as its source.
    """
    info = dataset.info
    counts = f"{len(dataset.train)} train / {len(dataset.val)} val / {len(dataset.test)} test"
    if counts in info.source:
        return info.source
    origin = "" if info.source == info.name else f", from {info.source}"
    return f"{info.name} ({counts}{origin})"
