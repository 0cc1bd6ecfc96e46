"""Software runners: metrics measured on data, and quantization-aware fine-tuning."""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from typing import Literal

import pydantic
import torch
import torch.nn.functional as F
from torch import nn

from bitscout.config import BitscoutConfigWarning
from bitscout.config._rules import SEED_MAX
from bitscout.data import SplitName
from bitscout.errors import SearchError
from bitscout.metrics._runner import Candidate, RunContext, Runner, register_runner
from bitscout.quant import Quantizer
from bitscout.training import EvalSet, evaluate_set

__all__ = ["DataLoaderName", "BasicEvaluation", "BasicTrain"]

#: Split names a runner accepts: bitscout's and MASE's data-loader names.
DataLoaderName = SplitName

#: Largest number of activation elements one evaluation chunk may hold at any layer.
_CHUNK_ELEMENTS = 1 << 24


def _chunk_size(context: RunContext, n: int) -> int:
    """Samples per forward pass: all at once when the activations stay small."""
    per_sample = max(
        [math.prod(context.dataset.info.input_shape)]
        + [max(layer.input_numel, layer.output_numel) for layer in context.traced.table]
    )
    return max(context.batch_size, min(n, _CHUNK_ELEMENTS // max(per_sample, 1)))


@register_runner
class BasicEvaluation(Runner):
    """``accuracy``, ``balanced_accuracy`` and ``loss`` over a fixed set of samples.

    ``accuracy`` is top-1, ``balanced_accuracy`` the mean per-class recall and ``loss``
    the mean cross-entropy, all as :func:`bitscout.training.evaluate` computes them (the
    one definition bitscout has; see it for the classes the recall mean counts).

    The samples are the first ``num_samples`` of the chosen split (all of it when it is
    smaller), moved to the device once, when the runner is made. Every call measures
    from scratch, under ``torch.inference_mode``: nothing carries over from one
    candidate to the next (MASE's runner accumulated its metric objects across trials).
    The samples go through the model all at once when the activations of the largest
    layer stay under 16M elements, else in chunks of the search's batch size or more.
    """

    name = "basic_evaluation"
    kind = "software"
    metrics = ("accuracy", "balanced_accuracy", "loss")
    maximize = frozenset({"accuracy", "balanced_accuracy"})
    options: BasicEvaluation.Options

    class Options(Runner.Options):
        """Options of ``basic_evaluation`` (MASE's names).

        Attributes:
            data_loader: The split: ``"val_dataloader"`` (or ``"val"``), train or test.
            num_samples: How many samples, from the start of the split.
        """

        data_loader: DataLoaderName = "val_dataloader"
        num_samples: pydantic.PositiveInt = 512

    def __init__(self, options: pydantic.BaseModel, context: RunContext) -> None:
        super().__init__(options, context)
        split = context.dataset.split(self.options.data_loader)
        n = min(self.options.num_samples, len(split))
        if n == 0:
            raise SearchError(
                f"basic_evaluation: the {self.options.data_loader!r} split of "
                f"{context.dataset.info.name!r} is empty; choose another data_loader"
            )
        chunk = _chunk_size(context, n)
        # Prepared once for every trial: labels checked and on the device, class counts.
        self._data = EvalSet(
            split.x[:n].to(context.device),
            split.y[:n],
            batch_size=None if chunk >= n else chunk,
            num_classes=context.dataset.info.num_classes,
            device=context.device,
        )

    @property
    def num_samples(self) -> int:
        """The number of samples every evaluation uses."""
        return self._data.n

    def run(self, candidate: Candidate) -> dict[str, float]:
        result = evaluate_set(candidate.model, self._data)
        return {
            "accuracy": result.accuracy,
            "balanced_accuracy": result.balanced_accuracy,
            "loss": result.loss,
        }


@register_runner
class BasicTrain(Runner):
    """Quantization-aware search: fine-tune each candidate before it is measured.

    :meth:`prepare` trains a private copy of the candidate, with straight-through
    gradients through its fake quantizers, for ``max_steps`` optimizer steps or
    ``max_epochs`` passes over the chosen split (shuffled with ``seed``; capped by
    ``num_samples`` as in MASE); the evaluation
    runners then measure the fine-tuned model. Candidates share the float parameters
    of the traced model, so each trial first copies the float model and builds its
    candidate on the copy: training never touches the shared float model or any other
    candidate. Without a configured ``basic_evaluation``, one with its default options
    (512 validation samples) is added.

    Reports ``train_loss``: the mean training loss over the final epoch's steps (over
    the last ``min(max_steps, steps per epoch)`` steps with ``max_steps``), measured
    while training. A last batch of one sample is skipped, as BatchNorm cannot train on
    it.
    """

    name = "basic_train"
    kind = "software"
    metrics = ("train_loss",)
    requires = ("basic_evaluation",)
    options: BasicTrain.Options

    class Options(Runner.Options):
        """Options of ``basic_train`` (MASE's names where MASE has the option).

        Attributes:
            max_steps: Optimizer steps per candidate (give this or ``max_epochs``).
            max_epochs: Passes over the split per candidate (or this).
            num_samples: With ``max_epochs``, MASE's cap on the training samples: at
                most ``ceil(num_samples / batch_size)`` steps.
            learning_rate: The optimizer's (peak) learning rate.
            lr_scheduler: ``"constant"``, or ``"linear"``: decay to 0 at the last step
                (Hugging Face's linear schedule, which MASE uses).
            num_warmup_steps: Steps over which the learning rate first rises linearly
                from 0 (either schedule).
            batch_size: Samples per step (default: the search's batch size).
            data_loader: The split to train on.
            optimizer: ``"adam"`` or ``"sgd"``.
            weight_decay: The optimizer's weight decay.
            seed: Seed of the batch order (default: the search's seed), the same for
                every candidate so that candidates are compared on equal terms.
            name: Accepted for MASE configs and ignored (with a warning): MASE's name
                for the metric its training loop reported.
        """

        max_steps: pydantic.PositiveInt | None = None
        max_epochs: pydantic.PositiveInt | None = None
        num_samples: pydantic.PositiveInt | None = None
        learning_rate: pydantic.PositiveFloat = 1e-3
        lr_scheduler: Literal["constant", "linear"] = "constant"
        num_warmup_steps: pydantic.NonNegativeInt = 0
        batch_size: pydantic.PositiveInt | None = None
        data_loader: DataLoaderName = "train_dataloader"
        optimizer: Literal["adam", "sgd"] = "adam"
        weight_decay: pydantic.NonNegativeFloat = 0.0
        # The range of the top-level seed, so that no seed fails only once trials run.
        seed: pydantic.conint(ge=0, le=SEED_MAX) | None = None  # type: ignore[valid-type]
        name: str | None = None

        @pydantic.model_validator(mode="after")
        def _one_budget(self) -> BasicTrain.Options:
            if (self.max_steps is None) == (self.max_epochs is None):
                raise ValueError(
                    "exactly one of max_steps and max_epochs must be given; got "
                    f"max_steps={self.max_steps}, max_epochs={self.max_epochs}"
                )
            if self.num_samples is not None and self.max_epochs is None:
                raise ValueError(
                    "num_samples caps max_epochs and cannot go with max_steps; got "
                    f"max_steps={self.max_steps}, num_samples={self.num_samples}"
                )
            if self.name is not None:
                warnings.warn(
                    f"search.strategy.sw_runner.basic_train.name = {self.name!r} is ignored: "
                    "basic_train reports train_loss, and basic_evaluation measures the "
                    "fine-tuned model",
                    BitscoutConfigWarning,
                    stacklevel=2,
                )
            return self

    def __init__(self, options: pydantic.BaseModel, context: RunContext) -> None:
        super().__init__(options, context)
        split = context.dataset.split(self.options.data_loader)
        if len(split) < 2:
            raise SearchError(
                f"basic_train: the {self.options.data_loader!r} split has {len(split)} "
                "samples; training needs at least 2"
            )
        self._x = split.x.to(context.device)
        self._y = split.y.to(context.device)
        self._batch_size = min(self.options.batch_size or context.batch_size, len(split))
        self._seed = context.seed if self.options.seed is None else self.options.seed

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one pass over the split."""
        full, rest = divmod(len(self._y), self._batch_size)
        return full + (rest > 1)

    @property
    def total_steps(self) -> int:
        """Optimizer steps per candidate."""
        if self.options.max_steps is not None:
            return self.options.max_steps
        total = (self.options.max_epochs or 0) * self.steps_per_epoch
        if self.options.num_samples is not None:
            total = min(total, -(-self.options.num_samples // self._batch_size))
        return total

    def learning_rate_factor(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (from 0) over the peak one."""
        warmup, total = self.options.num_warmup_steps, self.total_steps
        if step < warmup:
            return step / warmup
        if self.options.lr_scheduler == "linear":
            return max(0.0, (total - step) / max(1, total - warmup))
        return 1.0

    def _private_model(self, candidate: Candidate) -> nn.Module:
        traced = self.context.traced
        # The quantizer shares the float parameters among all candidates; training them
        # in place would change the float model and every other candidate, so this
        # trial builds its candidate on its own copy of the float model.
        private = dataclasses.replace(traced, gm=copy.deepcopy(traced.gm))
        for parameter in private.gm.parameters():
            parameter.requires_grad_(True)
        layer_map = self.context.quantizer.layer_map
        calibration = self.context.quantizer.calibration
        return Quantizer(private, layer_map=layer_map, calibration=calibration).build(candidate.config)

    def _optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        params = [p for p in model.parameters() if p.requires_grad]
        if self.options.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.options.learning_rate, weight_decay=self.options.weight_decay
            )
        return torch.optim.Adam(
            params, lr=self.options.learning_rate, weight_decay=self.options.weight_decay
        )

    def prepare(self, candidate: Candidate) -> Candidate:
        """Fine-tune a private copy of the candidate; the evaluation runners measure it."""
        model = self._private_model(candidate)
        optimizer = self._optimizer(model)
        generator = torch.Generator().manual_seed(self._seed)
        n, batch_size = len(self._y), self._batch_size
        per_epoch, total = self.steps_per_epoch, self.total_steps
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, self.learning_rate_factor)
        losses: list[torch.Tensor] = []
        model.train()
        with torch.inference_mode(False), torch.enable_grad():
            while len(losses) < total:
                order = torch.randperm(n, generator=generator).to(self.context.device)
                for start in range(0, n, batch_size):
                    index = order[start : start + batch_size]
                    if len(index) < 2 or len(losses) == total:
                        break
                    loss = F.cross_entropy(model(self._x[index]), self._y[index])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    losses.append(loss.detach())
        model.eval()
        train_loss = torch.stack(losses[-min(total, per_epoch) :]).mean().item()
        return candidate.with_model(model, notes={"train_loss": train_loss})

    def run(self, candidate: Candidate) -> dict[str, float]:
        if "train_loss" not in candidate.notes:
            candidate = self.prepare(candidate)
        return {"train_loss": candidate.notes["train_loss"]}
