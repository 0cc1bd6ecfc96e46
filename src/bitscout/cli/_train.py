"""``bitscout train CONFIG``: train the configured model and save its best checkpoint.

Trains from a fresh initialisation seeded by ``seed`` with the config's ``max_epochs``,
``batch_size`` and ``learning_rate`` (Adam, cross-entropy), printing train and validation
metrics per epoch, and saves the weights of the epoch with the best validation accuracy
in bitscout's checkpoint format, with a JSON file of its metrics next to it.

Where it saves (the run folder):

* ``--out DIR``: ``DIR/best.pt`` and ``DIR/best.json``;
* else, when the config has ``load_name``: exactly there (``<load_name>`` and
  ``<load_name minus suffix>.json``), so that a later ``bitscout search`` of the same
  config finds the checkpoint where the config says;
* else ``runs/<project>/train/best.pt``.

``--if-missing`` skips training when that checkpoint already exists (``make demo``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

import bitscout
from bitscout.cli._common import add_config_argument, add_override_options, config_from_args
from bitscout.config import Config
from bitscout.data import load_dataset
from bitscout.experiment import build_fresh_model, resolve_device
from bitscout.models import save_checkpoint
from bitscout.training import EpochMetrics, evaluate, train

__all__ = ["register", "run", "checkpoint_path"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train the configured model and save its best checkpoint",
        description=(
            "Train the config's model on its dataset (max_epochs, batch_size, "
            "learning_rate, seed) and save the best-validation-accuracy weights as best.pt "
            "with best.json (its metrics): in --out, else at load_name when the config "
            "sets it, else in runs/<project>/train/."
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


def checkpoint_path(config: Config) -> Path:
    """Where ``bitscout train`` saves the checkpoint of ``config`` (see the module doc)."""
    if config.out is not None:
        return Path(config.out) / "best.pt"
    if config.load_name is not None:
        return Path(config.load_name)
    return Path("runs") / config.project / "train" / "best.pt"


def _format_epoch(m: EpochMetrics, epochs: int) -> str:
    width = len(str(epochs))
    return (
        f"epoch {m.epoch:>{width}}/{epochs}  train loss {m.train_loss:.4f} acc {m.train_accuracy:.4f}"
        f"  |  val loss {m.val_loss:.4f} acc {m.val_accuracy:.4f} "
        f"balanced {m.val_balanced_accuracy:.4f}  ({m.seconds:.2f} s)"
    )


def run(args: argparse.Namespace) -> int:
    """Train, print per-epoch metrics, save ``best.pt`` and ``best.json``; 0 on success."""
    config = config_from_args(args)
    ckpt = checkpoint_path(config)
    metrics_file = ckpt.with_suffix(".json")
    if args.if_missing and ckpt.is_file():
        print(f"checkpoint {ckpt} exists; not training again (--if-missing)")
        return 0

    device = resolve_device(config.accelerator)
    dataset = load_dataset(
        config.dataset, path=config.dataset_path, seed=config.seed, label_column=config.label_column
    )
    info = dataset.info
    model = build_fresh_model(config, info)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"training {config.model} ({params:,} parameters) on {info.name} "
        f"({len(dataset.train)} train / {len(dataset.val)} val / {len(dataset.test)} test, "
        f"from {info.source}) on {device}"
    )
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
    test = evaluate(model, dataset.test.x, dataset.test.y, batch_size=config.batch_size,
                    num_classes=info.num_classes)
    val = result.best_val

    metrics: dict[str, Any] = {"val": val.as_dict(), "test": test.as_dict()}
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
        **metrics,
        "seconds": result.seconds,
        "history": [m.__dict__ for m in result.history],
        "bitscout_version": bitscout.__version__,
    }
    metrics_file.write_text(json.dumps(summary, indent=2) + "\n")

    print(
        f"best epoch {result.best_epoch}: val accuracy {val.accuracy:.4f} "
        f"(balanced {val.balanced_accuracy:.4f}, loss {val.loss:.4f}); "
        f"test accuracy {test.accuracy:.4f}  [{result.seconds:.1f} s]"
    )
    print(f"saved checkpoint: {ckpt}")
    print(f"saved metrics:    {metrics_file}")
    if config.load_type not in (None, "bitscout"):
        print(
            f"note: the checkpoint is in bitscout's format; the config's load_type = "
            f"{config.load_type!r} will not read it: set load_type = \"bitscout\" or remove it",
            file=sys.stderr,
        )
    if config.out is not None and config.load_name is not None and Path(config.load_name) != ckpt:
        print(
            f"note: the config's load_name is {config.load_name}; pass --load {ckpt} to use "
            "this checkpoint",
            file=sys.stderr,
        )
    return 0
