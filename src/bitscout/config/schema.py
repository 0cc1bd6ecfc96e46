"""The typed config: what a bitscout (or MASE) TOML file means, validated once.

The models hold the canonical shape documented in ``docs/ARCHITECTURE.md``; the loader
(:func:`bitscout.config.load_config`) reads MASE's table shape into it, and
:meth:`Config.to_toml` writes it back in that shape. Every model is frozen and rejects
unknown keys. Leaf rules live in :mod:`bitscout.config._rules`, so a value is judged the
same way whether it came from a file, a command-line option or Python code.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bitscout.config._constraints import ConstraintSpec
from bitscout.config._plugins import Plugins
from bitscout.config._mase import HARDWARE_RUNNERS, SOFTWARE_RUNNERS, runner_problem, to_toml_shape
from bitscout.config._rules import (
    PTQ_SPACE,
    RULE_ERROR,
    Accelerator,
    By,
    Choices,
    Direction,
    FilePath,
    Flag,
    LoadType,
    LowerText,
    Names,
    MetricScale,
    NonNegativeInt,
    Observer,
    Percentile,
    ParallelCount,
    PositiveFloat,
    PositiveInt,
    Scalar,
    Seed,
    SpaceName,
    StorageURL,
    Table,
    Task,
    Text,
    TrialCount,
    rule_at,
)

__all__ = [
    "Config",
    "Passes",
    "QuantizePass",
    "Search",
    "SearchSpaceConfig",
    "StrategyConfig",
    "Setup",
    "MetricSpec",
    "SOFTWARE_RUNNERS",
    "HARDWARE_RUNNERS",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuantizePass(_Model):
    """A fixed quantization config for a one-shot transform (``[passes.quantize]``).

    Attributes:
        by: ``"type"``: keys are op types (``linear``, ``conv2d``, ...); ``"name"``: keys
            are graph node names (``seq_blocks_2``).
        entries: Key -> per-layer config in MASE's flat form (``name``,
            ``data_in_width``, ``weight_frac_width``, ...). ``"default"`` is one of the
            keys and applies to every layer no other key matches. In TOML each entry is
            the table ``[passes.quantize.<key>.config]``.
    """

    by: By = "type"
    entries: dict[str, dict[str, Scalar]] = Field(default_factory=dict)


class SearchSpaceConfig(_Model):
    """The search space (``[search.search_space]``).

    Attributes:
        name: MASE's space name; only ``"graph/quantize/mixed_precision_ptq"``.
        by: ``"type"`` or ``"name"`` (TOML: ``setup.by``), as in :class:`QuantizePass`.
        seed: Key -> field -> choices (TOML: ``[search.search_space.seed.<key>.config]``).
            A scalar in the file is one choice; ``"NA"`` means "not given".
    """

    name: SpaceName = PTQ_SPACE
    by: By
    seed: dict[str, dict[str, Choices]]


class Setup(_Model):
    """How a search runs (``[search.strategy.setup]``).

    Attributes:
        n_jobs: Trials run in parallel threads within one process (Optuna's n_jobs).
        n_trials: Trials in total for the study, over every worker.
        timeout: Stop starting trials after this many seconds; None: no limit.
        sampler: The Optuna sampler when the strategy is ``"optuna"`` (``tpe``,
            ``random``, ``nsgaii``, ...), compared in lower case. Not given:
            ``sensitivity`` for one summed objective (bitscout's own strategy, the
            most sample-efficient one measured: docs/sample_efficiency.md), ``tpe``
            for a Pareto search (``sum_scaled_metrics = false``), which ``sensitivity``
            does not do.
        sum_scaled_metrics: True: one objective, the sum of scaled metrics; False: one
            objective per metric (a Pareto search).
        direction: Direction of the summed objective.
        seed: Seed of the sampler; filled from the top-level ``seed`` when not given.
        storage: An Optuna storage URL shared by workers; None: a file in the run folder.
        study_name: The study's name in that storage.
        workers: Local worker processes sharing the study (``--workers``).
        sampler_options: Keyword options of the sampler or strategy, validated by it.
    """

    n_jobs: ParallelCount = 1
    n_trials: TrialCount = 20
    timeout: PositiveFloat | None = None
    sampler: LowerText = "sensitivity"
    sum_scaled_metrics: Flag = True
    direction: Direction = "maximize"
    seed: Seed | None = None
    storage: StorageURL | None = None
    study_name: Text | None = None
    workers: ParallelCount = 1
    sampler_options: Table = Field(default_factory=dict)

    @model_validator(mode="after")
    def _default_sampler(self) -> Setup:
        # A Pareto search that names no sampler gets TPE: sensitivity takes one objective.
        if "sampler" not in self.model_fields_set and not self.sum_scaled_metrics:
            self.__dict__["sampler"] = "tpe"
        return self


class MetricSpec(_Model):
    """How one metric enters the objective (``[search.strategy.metrics.<name>]``).

    Attributes:
        scale: Weight of the metric in the sum (0 leaves it out of the sum).
        direction: ``"maximize"`` or ``"minimize"``; None: the metric's natural one.
        normalize: Use the metric's ratio to the float model instead of its raw value.
    """

    scale: MetricScale = 1.0
    direction: Direction | None = None
    normalize: Flag = False


def _check_runner_names(kind: str, runners: dict[str, Any]) -> dict[str, Any]:
    for name in runners:
        problem = runner_problem(kind, name, f"search.strategy.{kind}_runner", as_value=True)
        if problem is not None:
            rule = problem.rule if repr(name) in problem.rule else f"{name!r}: {problem.rule}"
            hint = f"; {problem.hint}" if problem.hint else ""
            raise PydanticCustomError(RULE_ERROR, f"{rule}{hint}")
    return runners


#: Metrics that are shares of the samples, with the range each can take (a drop is the
#: float model's share minus the trial's).
_FRACTION_METRICS: dict[str, tuple[float, float]] = {
    **dict.fromkeys(("accuracy", "balanced_accuracy"), (0.0, 1.0)),
    **dict.fromkeys(("accuracy_drop", "balanced_accuracy_drop"), (-1.0, 1.0)),
}


class StrategyConfig(_Model):
    """The search strategy, its runners, setup and metrics (``[search.strategy]``).

    Attributes:
        name: ``"optuna"`` (then ``setup.sampler`` picks the algorithm) or another
            registered strategy (``"brute_force"``), compared in lower case.
        eval_mode: Evaluate candidates in eval mode (post-training quantization).
        sw_runners: Software runner name -> its options
            (``[search.strategy.sw_runner.<name>]``); the older ``sw_runner = "<name>"``
            with ``data_loader``/``num_samples`` beside it is folded into this form.
            The options are validated by the runner itself.
        hw_runners: Hardware runner name -> its options, likewise.
        setup: How the search runs.
        metrics: Metric name -> how it enters the objective.
        constraints: Metric name -> its bounds (``[search.strategy.constraints]``);
            a trial is feasible when every bound holds.
    """

    name: LowerText = "optuna"
    eval_mode: Flag = True
    sw_runners: dict[str, Table] = Field(default_factory=dict)
    hw_runners: dict[str, Table] = Field(default_factory=dict)
    setup: Setup = Field(default_factory=Setup)
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    constraints: dict[str, ConstraintSpec] = Field(default_factory=dict)

    @field_validator("sw_runners")
    @classmethod
    def _known_sw_runners(cls, runners: dict[str, Any]) -> dict[str, Any]:
        return _check_runner_names("sw", runners)

    @field_validator("hw_runners")
    @classmethod
    def _known_hw_runners(cls, runners: dict[str, Any]) -> dict[str, Any]:
        return _check_runner_names("hw", runners)

    @field_validator("constraints")
    @classmethod
    def _fractions_in_range(cls, constraints: dict[str, ConstraintSpec]) -> dict[str, ConstraintSpec]:
        # accuracy is a share of samples: `accuracy.min = 95` (a percentage) would skip
        # every trial as infeasible after measuring it, and say so only at the end.
        for metric, (low, high) in _FRACTION_METRICS.items():
            spec = constraints.get(metric)
            if spec is None:
                continue
            for bound, value, given in (("min", spec.min_value, spec.min), ("max", spec.max_value, spec.max)):
                if value is None or low <= value <= high:
                    continue
                example = f"; for {value:g} % write {bound} = {value / 100:g}" if 1 < abs(value) <= 100 else ""
                raise rule_at(
                    (metric, bound),
                    f"is outside {low:g}..{high:g}, the values {metric} can take (a share of the "
                    f"samples, not a percentage){example}",
                    given,
                )
        return constraints

    @property
    def strategy_name(self) -> str:
        """The registry name of the strategy: the sampler for ``"optuna"``, else ``name``."""
        return self.setup.sampler if self.name == "optuna" else self.name


class Search(_Model):
    """The ``[search]`` section: a space and a strategy."""

    search_space: SearchSpaceConfig
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)


class Passes(_Model):
    """The ``[passes]`` section; only ``quantize`` has a meaning here."""

    quantize: QuantizePass | None = None


_ARRAY_START = re.compile(r"^(?P<head>\S.* = )\[$")


def _compact_arrays(text: str) -> str:
    """Write short arrays of scalars on one line, as people write them in MASE files.

    tomli_w puts every array item on its own line; this joins the items of arrays that
    hold only scalars. Each item tomli_w writes is one line (strings are escaped), so
    joining lines cannot change a value; the caller checks that anyway.
    """
    lines, out, index = text.split("\n"), [], 0
    while index < len(lines):
        match = _ARRAY_START.match(lines[index])
        end = index + 1
        while match and end < len(lines) and lines[end].startswith("    ") and lines[end].endswith(","):
            end += 1
        items = [line.strip()[:-1] for line in lines[index + 1 : end]]
        if match and end < len(lines) and lines[end] == "]" and not any(
            item.startswith(("[", "{")) for item in items
        ):
            out.append(f"{match['head']}[{', '.join(items)}]")
            index = end + 1
        else:
            out.append(lines[index])
            index += 1
    return "\n".join(out)


class Config(_Model):
    """A whole bitscout config: a superset of MASE's search config.

    Build one with :func:`bitscout.config.load_config` (from a TOML file) or in code.
    ``project`` and ``search.strategy.setup.seed`` are filled in when not given.
    ``source`` records the file a config came from and is not part of its value: two
    configs that differ only in ``source`` are equal. Relative paths (``load_name``,
    ``dataset_path``, ``out``) are relative to the working directory, as in MASE.

    Attributes:
        plugins: Modules imported before anything else is validated (``"package.module"``,
            or ``"package.module:function"``, then called), e.g. to register runners.
        model: Model registry name (``"jsc-tiny"``, ``"mlp"``, ``"cnn"``) or
            ``"package.module:factory"``.
        model_options: Keyword arguments of the model builder.
        dataset: Dataset registry name (``"digits"``, ``"jsc"``, ...), a data file
            (``.npz``, ``.pt``, ``.csv``, ``.parquet``) or ``"package.module:factory"``.
        label_column: The label column of a CSV or Parquet ``dataset``.
        trace_into: Module class names torch.fx traces into instead of keeping them as
            one float leaf (``"TransformerEncoderLayer"``).
        dataset_path: A data file (JSC); None: ``BITSCOUT_DATA`` or where MASE keeps it.
        task: ``"cls"`` (MASE's ``"classification"`` is read as ``"cls"``).
        batch_size: Batch size of training and evaluation.
        max_epochs: Training epochs.
        learning_rate: Training learning rate.
        accelerator: ``"cpu"``, ``"cuda"`` or ``"auto"`` (``"gpu"`` is read as ``"cuda"``).
        seed: Seed of everything random; the sampler's too unless ``setup.seed`` is set.
        project: Project name; default ``<model>_<dataset>``.
        load_name: Checkpoint to start from (``--load``).
        load_type: Its kind (``pt``, ``pl``, ``bitscout``); None: found from the file.
        out: Run folder (``--out``).
        calibration_samples: Training samples the activation ranges are calibrated on
            (once per command; see docs/formats.md).
        calibration_observer: ``"minmax"`` or ``"percentile"``: how a range is read
            from the calibrated activations.
        calibration_percentile: The upper percentile of ``"percentile"`` (the lower is
            100 minus it).
        fold_bn: Fold BatchNorm into the Conv/Linear layer before it, for post-training
            quantization (``quantize``, ``export`` and searches with ``eval_mode``).
        passes: ``[passes]``: a fixed ``quantize`` config.
        search: ``[search]``: the search space and strategy; None when absent.
        source: The file the config came from (for messages).
    """

    # First: validating it imports the plugins, which may register the runners, models
    # and data sets the fields below name (pydantic validates fields in this order).
    plugins: Plugins = ()
    model: Text
    model_options: Table = Field(default_factory=dict)
    dataset: Text
    label_column: Text | None = None
    trace_into: Names = ()
    dataset_path: FilePath | None = None
    task: Task = "cls"
    batch_size: PositiveInt = 128
    max_epochs: PositiveInt = 10
    learning_rate: PositiveFloat = 1e-3
    accelerator: Accelerator = "auto"
    seed: Seed = 0
    project: Text = ""
    load_name: FilePath | None = None
    load_type: LoadType | None = None
    out: FilePath | None = None
    calibration_samples: PositiveInt = 256
    calibration_observer: Observer = "minmax"
    calibration_percentile: Percentile = 99.99
    fold_bn: Flag = True
    passes: Passes = Field(default_factory=Passes)
    search: Search | None = None
    source: FilePath | None = None

    @model_validator(mode="after")
    def _fill_defaults(self) -> Config:
        # The instance is still being built: setting derived defaults through __dict__
        # is the one place a frozen config is written. Nested models are copied, never
        # changed, because they may be objects the caller still holds.
        if not self.project:
            self.__dict__["project"] = f"{self.model}_{self.dataset}".replace("/", "-").replace(":", "-")
        if self.search is not None and self.search.strategy.setup.seed is None:
            strategy = self.search.strategy
            setup = strategy.setup.model_copy(update={"seed": self.seed})
            self.__dict__["search"] = self.search.model_copy(
                update={"strategy": strategy.model_copy(update={"setup": setup})}
            )
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return self.model_dump(exclude={"source"}) == other.model_dump(exclude={"source"})

    # A config holds dicts (runner options, per-layer configs), so it cannot be hashed.
    __hash__ = None  # type: ignore[assignment]

    @property
    def strategy_name(self) -> str | None:
        """The registry name of the search strategy (``"tpe"``, ``"brute_force"``), if any."""
        return None if self.search is None else self.search.strategy.strategy_name

    def to_toml(self) -> str:
        """The resolved config as TOML in MASE's table shape.

        Loading the text again gives an equal :class:`Config`. MASE keys that bitscout
        ignores are not written (they were dropped at load time).
        """
        document = to_toml_shape(self.model_dump(exclude={"source"}))
        text = tomli_w.dumps(document)
        compact = _compact_arrays(text)
        # Joining array lines is formatting only; fall back if it ever were not.
        return compact if tomllib.loads(compact) == tomllib.loads(text) else text

    def summary(self) -> str:
        """One line: model, dataset, strategy, number of trials and metrics."""
        head = f"model {self.model!r} on dataset {self.dataset!r}"
        if self.search is None:
            quantize = self.passes.quantize
            tail = "no [search] section"
            if quantize is not None:
                tail += f"; [passes.quantize] by {quantize.by} over {len(quantize.entries)} key(s)"
            return f"{head}; {tail}"
        strategy = self.search.strategy
        setup = strategy.setup
        metrics = ", ".join(
            f"{name} (x{spec.scale:g}" + (f", {spec.direction})" if spec.direction else ")")
            for name, spec in strategy.metrics.items()
        ) or "none"
        objective = (
            f"their scaled sum, {setup.direction}"
            if setup.sum_scaled_metrics
            else "one objective per metric (Pareto)"
        )
        bounds = ", ".join(
            f"{name} {sign} {limit}"
            for name, spec in strategy.constraints.items()
            for sign, limit in ((">=", spec.min), ("<=", spec.max))
            if limit is not None
        )
        return (
            f"{head}; strategy {strategy.strategy_name!r}, {setup.n_trials} trials; "
            f"metrics: {metrics}; objective: {objective}"
            + (f"; constraints: {bounds}" if bounds else "")
        )
