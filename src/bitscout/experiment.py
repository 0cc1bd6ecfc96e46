"""From a config to what every command starts from: data, model with weights, device.

Relative paths in a config (``dataset_path``, ``load_name``) resolve against the current
working directory, as in MASE.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from bitscout.data import Dataset, DatasetInfo, load_dataset
from bitscout.errors import CheckpointError, ConfigError
from bitscout.graph import traceable_view
from bitscout.models import build_model, load_checkpoint

if TYPE_CHECKING:
    from bitscout.config import Config

__all__ = ["Experiment", "resolve_device", "build_fresh_model"]


def resolve_device(accelerator: str) -> torch.device:
    """Turn a config's ``accelerator`` into a device.

    Args:
        accelerator: ``"cpu"``, ``"cuda"`` (MASE's ``"gpu"`` means the same) or
            ``"auto"`` (CUDA when available, else the CPU).

    Raises:
        ConfigError: CUDA was asked for but is not available, or an unknown value.
    """
    name = accelerator.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise ConfigError(
                f"accelerator = {accelerator!r} but PyTorch sees no CUDA device here "
                f"(torch {torch.__version__}); use accelerator = \"cpu\" or \"auto\" "
                "(--accelerator cpu)"
            )
        return torch.device("cuda")
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(
        f"accelerator must be one of 'cpu', 'cuda' ('gpu'), 'auto'; got {accelerator!r}"
    )


def build_fresh_model(config: Config, info: DatasetInfo) -> nn.Module:
    """Build the config's model with a fresh initialisation seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    return build_model(config.model, info, config.model_options)


def _train_hint(config: Config) -> str:
    return f"bitscout train {config.source if config.source is not None else 'CONFIG'}"


@dataclass
class Experiment:
    """A config made concrete.

    Attributes:
        config: The config it was built from.
        dataset: The loaded data set (splits as tensors, on the CPU).
        model: The model in eval mode, on ``device``, checkpoint loaded when
            ``config.load_name`` is set.
        device: Where the model runs.
        checkpoint: The checkpoint file loaded, or ``None``.
    """

    config: Config
    dataset: Dataset
    model: nn.Module
    device: torch.device
    checkpoint: Path | None = None

    @classmethod
    def from_config(cls, config: Config, *, require_checkpoint: bool = False) -> Experiment:
        """Load the data set, build the model, load its checkpoint, pick the device.

        Args:
            config: A loaded config.
            require_checkpoint: Fail when the config names no checkpoint (searching
                an untrained model is rarely what anyone wants).

        Raises:
            DataError: The data set cannot be loaded.
            ModelError: The model cannot be built.
            CheckpointError: The checkpoint is missing (the message says to run
                ``bitscout train CONFIG``), unreadable or does not fit.
            ConfigError: The accelerator is not available.
        """
        device = resolve_device(config.accelerator)
        dataset = load_dataset(
            config.dataset, path=config.dataset_path, seed=config.seed, label_column=config.label_column
        )
        model = build_fresh_model(config, dataset.info)
        checkpoint: Path | None = None
        if config.load_name is not None:
            checkpoint = Path(config.load_name).expanduser()
            if checkpoint.is_dir():
                raise CheckpointError(
                    f"checkpoint {checkpoint} (load_name"
                    f"{f' in {config.source}' if config.source is not None else ''}) is a "
                    "folder, not a checkpoint file; set load_name to the file itself"
                )
            if not checkpoint.is_file():
                raise CheckpointError(
                    f"checkpoint {checkpoint} (load_name"
                    f"{f' in {config.source}' if config.source is not None else ''}) does not "
                    f"exist (relative paths are taken from the current folder, {Path.cwd()}). "
                    f"Run `{_train_hint(config)}` first: it trains the model and saves it there."
                )
            load_checkpoint(model, checkpoint, config.load_type)
        elif require_checkpoint:
            raise CheckpointError(
                "the config names no checkpoint (load_name); set load_name to a trained "
                f"model's checkpoint, or run `{_train_hint(config)}` to train one "
                "(it saves best.pt and prints where)"
            )
        if config.trace_into:
            # After the checkpoint (its keys are the model's own): every command traces
            # the same view, so a layer searched is a layer exported.
            model = traceable_view(model, config.trace_into)
        model.to(device).eval()
        return cls(config=config, dataset=dataset, model=model, device=device, checkpoint=checkpoint)
