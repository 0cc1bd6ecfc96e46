"""``bitscout.search(model, ...)``: search a trained model's quantization in one call.

The Python face of ``bitscout search``: the same space fields, runners, strategies,
storages and records, taking objects instead of a TOML file::

    result = bitscout.search(
        model,                                   # a trained nn.Module (not modified)
        data=(x_val, y_val),                     # or eval_fn=lambda qmodel: {"accuracy": ...}
        space={"conv*": {"weight_width": [2, 4, 8]}, "linear": {"weight_width": [4, 8]}},
        objective={"accuracy": 1.0, "average_bitwidth": -0.02},   # sign = direction
        strategy="tpe", n_trials=100, seed=0, out="runs/mine",
    )
    result.best, result.pareto, result.baseline, result.to_dataframe(), result.plot()

Space keys, most specific first: a layer's node name (``"fc"``), a glob over node names
(``"block_*"``, ``fnmatch`` rules; the first matching glob in the dict's order), an op
type (``"linear"``, ``"conv2d"``, ``"relu"``, ...), then ``"default"``. A layer no key
matches stays in float. Values use the TOML's field names; fields left out take the
API's defaults: ``name = "integer"`` and 8 bits for each width of the format that has no
default of its own (``data_in_width``, ``weight_width``, ``bias_width``).
"""

from __future__ import annotations

import fnmatch
import math
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitscout.errors import BitscoutWarning, ConfigError, SearchError

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from matplotlib.figure import Figure
    from torch import nn

    from bitscout.evaluation import Evaluation
    from bitscout.graph import LayerTable
    from bitscout.study import SearchResult, TrialRecord

__all__ = ["search", "ApiSearchResult", "resolve_space", "API_FIELD_DEFAULTS"]

#: Fields a space entry may leave out, and the value they then take.
API_FIELD_DEFAULTS: dict[str, Any] = {
    "name": "integer",
    "data_in_width": 8,
    "weight_width": 8,
    "bias_width": 8,
}
_DEFAULT_KEY = "default"


def resolve_space(space: Mapping[str, Mapping[str, Any]], table: LayerTable) -> dict[str, dict[str, Any]]:
    """The choices of every layer: each takes the most specific matching key.

    Precedence: node name, then the first glob (in the dict's order) that matches the
    name, then the op type, then ``"default"``. Fields left out get
    :data:`API_FIELD_DEFAULTS` (only those the layer has tensors for).

    Raises:
        ConfigError: A key matches no layer (the message lists the layers and op types),
            or an entry is not a dict of fields.
    """
    names = table.names()
    op_types = sorted({layer.op for layer in table})
    used: set[str] = set()
    resolved: dict[str, dict[str, Any]] = {}
    for key, entry in space.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"space[{key!r}] must be a dict of fields -> choices; got {type(entry).__name__}")
    globs = [k for k in space if any(c in k for c in "*?[") and k not in names]
    for layer in table:
        key = next(
            (
                k
                for k in (
                    layer.name if layer.name in space else None,
                    next((g for g in globs if fnmatch.fnmatchcase(layer.name, g)), None),
                    layer.op if layer.op in space else None,
                    _DEFAULT_KEY if _DEFAULT_KEY in space else None,
                )
                if k is not None
            ),
            None,
        )
        if key is None:
            continue
        used.add(key)
        fields = dict(space[key])
        if fields.get("name", "integer") in ("NA", ["NA"], ("NA",)):
            continue
        for name, value in API_FIELD_DEFAULTS.items():
            tensor = name.removesuffix("_width")
            if name != "name" and tensor not in layer.tensors:
                continue
            fields.setdefault(name, value)
        resolved[layer.name] = fields
    unused = [k for k in space if k not in used and k != _DEFAULT_KEY]
    if unused:
        raise ConfigError(
            f"space: key(s) {unused} match no layer; keys are layer names ({', '.join(names)}), "
            f"globs over them, op types ({', '.join(op_types)}) or 'default'"
        )
    return resolved


@dataclass
class ApiSearchResult:
    """What :func:`search` returns: the search's records and the float model's metrics.

    Attributes:
        result: The study's records (:class:`bitscout.study.SearchResult`): every trial,
            objective names and directions, the run folder.
        baseline: The unquantized model's metrics, measured as a trial is.
        out: The run folder (a temporary one when ``out`` was not given).
    """

    result: SearchResult
    baseline: dict[str, float]
    out: Path
    _tmp: Any = field(default=None, repr=False)

    @property
    def trials(self) -> list[TrialRecord]:
        """Every trial of the study."""
        return list(self.result.trials)

    @property
    def best(self) -> TrialRecord | None:
        """The best trial (one objective), or None."""
        return self.result.best

    @property
    def pareto(self) -> list[TrialRecord]:
        """The Pareto set (several objectives), or the best trial alone."""
        return self.result.pareto if self.result.is_multi_objective else ([self.best] if self.best else [])

    def drop(self, record: TrialRecord) -> dict[str, float]:
        """Metric -> baseline minus the trial's value (a positive accuracy drop is a loss)."""
        return {
            name: self.baseline[name] - value
            for name, value in record.metrics.items()
            if name in self.baseline and math.isfinite(value)
        }

    def to_dataframe(self) -> pd.DataFrame:
        """One row per trial: number, state, objective values, metrics, ``<metric>_drop``
        (baseline minus value) and the per-layer config."""
        import pandas as pd

        rows = []
        names = self.result.objective_names or [f"objective_{i}" for i in range(len(self.result.directions))]
        for record in self.result.trials:
            row: dict[str, Any] = {"number": record.number, "state": record.state}
            row.update({name: value for name, value in zip(names, record.values)})
            row.update(record.metrics)
            row.update({f"{name}_drop": value for name, value in self.drop(record).items()})
            row.update({f"config/{layer}": str(cfg) for layer, cfg in record.sampled_config.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def plot(self, x: str | None = None, y: str | None = None) -> Figure:
        """``y`` against ``x`` for every evaluated trial, the float model as a star.

        Defaults: ``y`` the first software metric (``accuracy`` when measured), ``x``
        ``average_bitwidth``.

        Raises:
            SearchError: No evaluated trial has both metrics.
        """
        import matplotlib.pyplot as plt

        done = [t for t in self.result.trials if t.is_complete]
        metrics = done[0].metrics if done else {}
        y = y or ("accuracy" if "accuracy" in metrics else next(iter(metrics), "accuracy"))
        x = x or "average_bitwidth"
        points = [(t.metrics[x], t.metrics[y]) for t in done if x in t.metrics and y in t.metrics]
        if not points:
            raise SearchError(f"no evaluated trial has both {x!r} and {y!r}: nothing to plot")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(*zip(*points), s=16, label="trials")
        if x in self.baseline and y in self.baseline:
            ax.scatter([self.baseline[x]], [self.baseline[y]], marker="*", s=120, color="tab:red", label="float model")
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
        ax.legend()
        return fig


def _function_runner(fn: Callable[[nn.Module], Mapping[str, float]], float_model: nn.Module) -> Any:
    """A software runner class around the user's ``eval_fn``; its metrics are the keys
    ``eval_fn`` returns for the float model."""
    from bitscout.metrics import Runner

    try:
        names = tuple(fn(float_model))
    except Exception as exc:
        raise SearchError(f"eval_fn failed on the float model: {type(exc).__name__}: {exc}") from exc
    if not names:
        raise SearchError("eval_fn returned no metrics for the float model; return a dict like {'accuracy': 0.9}")

    class EvalFn(Runner):
        name = "eval_fn"
        kind = "software"
        metrics = names
        maximize = frozenset()

        def run(self, candidate: Any) -> dict[str, float]:
            values = dict(fn(candidate.model))
            return {name: float(values[name]) for name in names}

    return EvalFn


def _hardware_runner_for(metric: str) -> str | None:
    from bitscout.metrics import get_runner, runner_names

    for name in runner_names("hardware"):
        if metric in get_runner(name).metrics:
            return name
    return None


def search(
    model: nn.Module,
    *,
    data: Any = None,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    example_input: torch.Tensor | None = None,
    space: Mapping[str, Mapping[str, Any]],
    objective: Mapping[str, float],
    constraints: Mapping[str, Mapping[str, float | str]] | None = None,
    strategy: str = "tpe",
    strategy_options: Mapping[str, Any] | None = None,
    n_trials: int = 20,
    seed: int = 0,
    out: str | Path | None = None,
    runners: Mapping[str, Mapping[str, Any]] | None = None,
    trace_into: Sequence[str] = (),
    storage: str | None = None,
    study_name: str | None = None,
    n_jobs: int = 1,
    timeout: float | None = None,
    device: str | torch.device | None = None,
    batch_size: int = 128,
    fold_bn: bool = True,
    calibration_samples: int = 256,
    calibration_observer: str = "minmax",
    progress: bool = False,
) -> ApiSearchResult:
    """Search per-layer quantization of a trained model.

    Args:
        model: The trained float model; it is not modified (its training flags are
            restored, its tensors untouched).
        data: Labelled data to evaluate on (anything :func:`bitscout.data.as_dataset`
            takes; one ``(x, y)`` is used whole as the validation data). With ``data``,
            the ``basic_evaluation`` runner measures ``accuracy``, ``balanced_accuracy``
            and ``loss``.
        eval_fn: Instead of ``data``: ``eval_fn(qmodel) -> {"metric": value, ...}``,
            called on every candidate (and once on the float model).
        example_input: A batch the model accepts (one tensor); default: two samples of
            ``data``.
        space: Key -> field -> choices (see the module docstring for keys and defaults).
        objective: Metric -> weight; the sign is the direction (``+``: larger is better).
            Hardware metrics (``average_bitwidth``, ``bitops``, ...) bring their runner.
        constraints: Metric -> bounds, as ``[search.strategy.constraints]``:
            ``{"average_bitwidth": {"max": 4}, "weight_bytes": {"max": "4 KiB"},
            "accuracy_drop": {"max": 0.01}}``. ``best`` is then the best feasible trial;
            configurations over a hardware bound are skipped without evaluation.
        strategy: A registered strategy: ``"tpe"``, ``"random"``, ``"brute_force"``,
            ``"nsgaii"``, ... (as ``--sampler``).
        strategy_options: The strategy's options (``sampler_options`` in TOML).
        n_trials: Trials in total (a resumed study counts its earlier ones).
        seed: The sampler's seed.
        out: The run folder (log.json, trials.csv, best.json, plots, the study); None: a
            temporary folder, removed with the result.
        runners: More runners and their options, ``{"latency": {"repeats": 5}}``
            (software or hardware, as in ``sw_runner``/``hw_runner`` tables).
        trace_into: See :func:`bitscout.graph.trace`.
        storage: An Optuna storage URL shared with other processes; None: the run folder.
        study_name: The study's name in the storage (default ``"bitscout"``).
        n_jobs: Trials in parallel threads.
        timeout: Stop starting trials after this many seconds.
        device: Where candidates run; default: where the model's parameters are.
        batch_size: Batch size of the runners that take one.
        fold_bn: Fold BatchNorm into the layer before it (as the config's ``fold_bn``).
        calibration_samples: Samples of the evaluation data (or of ``example_input``)
            the activation ranges are calibrated on.
        calibration_observer: ``"minmax"`` or ``"percentile"``.
        progress: Show a progress bar.

    Returns:
        The records, the best trial or Pareto set, and the float model's metrics.

    Raises:
        BitscoutError: The same errors as ``bitscout search`` for bad data, space,
            objective, strategy or storage.
    """
    import optuna
    import pydantic
    import torch

    from bitscout.config import MetricSpec, Setup, StrategyConfig, check_outputs_are_ours
    from bitscout.data import Dataset, DatasetInfo, Split, as_dataset
    from bitscout.evaluation import RunnerEvaluator
    from bitscout.graph import traceable_view
    from bitscout.metrics import Constraints, MetricWarning, Objective, RunContext, RunnerSet, build_runners
    from bitscout.quant import Quantizer, prepare_ptq
    from bitscout.space import SearchSpace
    from bitscout.strategies import get_strategy
    from bitscout.study import run_search

    if (data is None) == (eval_fn is None):
        raise ConfigError("give exactly one of data=(x, y) (bitscout measures accuracy) or eval_fn=fn (you do)")
    if not objective:
        raise ConfigError("objective must name at least one metric, e.g. {'accuracy': 1.0}")
    if out is not None:
        # A log.json, plot, journal, ... there that no search wrote is refused now.
        check_outputs_are_ours(
            Path(out), f"out={str(out)!r}", journal=storage is None,
            writes=("objective.png", "pareto_*.png", "best_widths.png", "sensitivity.png"),
        )
    dataset = as_dataset(data, seed=seed, name="data", single="val") if data is not None else None
    if dataset is not None:
        from bitscout.models._user import check_model_output

        # bitscout measures accuracy on the data: the model must give one row of class
        # scores per sample (not a tuple or a dict), as many as the data has classes.
        check_model_output(model, dataset.info, f"model {type(model).__name__}")
    if example_input is None:
        if dataset is None:
            raise ConfigError("eval_fn needs example_input=a batch the model accepts (for tracing)")
        example_input = dataset.val.x[:2]
    if isinstance(example_input, tuple):
        raise ConfigError("example_input must be one tensor (a batch of the model's first argument)")
    examples = (example_input,)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    if dataset is None:
        # Runners that read data (latency) get the example input, labelled 0.
        x = examples[0].detach().cpu()
        part = Split(x.float(), torch.zeros(len(x), dtype=torch.int64))
        info = DatasetInfo("example_input", tuple(x.shape[1:]), 1, ("0",), "example_input")
        dataset = Dataset(info=info, train=part, val=part, test=part)

    flags = [(m, m.training) for m in model.modules()]
    try:
        # As `bitscout search` does: BatchNorm folded, activation ranges calibrated once
        # (on the evaluation data, the only data the API is given).
        calibration_x = dataset.val.x[:calibration_samples].to(device)
        prepared = prepare_ptq(
            traceable_view(model, trace_into) if trace_into else model,
            examples[0].to(device),
            calibration_x,
            fold_bn=fold_bn,
            observer=calibration_observer,
            batch_size=batch_size,
            source=f"data[:{len(calibration_x)}]",
        )
        traced = prepared.traced
        search_space = SearchSpace(traced.table, resolve_space(space, traced.table))
        context = RunContext(
            traced=traced, quantizer=Quantizer(traced, calibration=prepared.calibration), dataset=dataset,
            device=device, batch_size=batch_size, seed=seed,
        )
        sw: dict[str, dict[str, Any]] = {}
        hw: dict[str, dict[str, Any]] = {}
        if eval_fn is None:
            sw["basic_evaluation"] = {"num_samples": len(dataset.val)}
        fn_runner = None if eval_fn is None else _function_runner(eval_fn, traced.gm.eval())
        produced = set(fn_runner.metrics) if fn_runner is not None else {"accuracy", "balanced_accuracy", "loss"}
        for metric in [*objective, *(constraints or {})]:
            if metric in produced or metric.removesuffix("_drop") in produced:
                continue
            base = metric.removesuffix("_ratio")
            runner = _hardware_runner_for(metric) or _hardware_runner_for(base)
            if runner is None:
                raise ConfigError(
                    f"objective: no runner measures {metric!r}; "
                    + ("eval_fn returns " + ", ".join(sorted(produced)) if eval_fn else "data gives accuracy, balanced_accuracy, loss")
                    + " and hardware runners give average_bitwidth, bitops, flops, model_size, latency, ..."
                )
            hw.setdefault(runner, {})
        hw.setdefault("average_bitwidth", {})
        for name, options in (runners or {}).items():
            from bitscout.metrics import get_runner

            (sw if get_runner(name).kind == "software" else hw)[name] = dict(options)
        metrics = {
            name: MetricSpec(scale=abs(weight), direction="maximize" if weight > 0 else "minimize")
            for name, weight in objective.items()
        }
        try:
            strategy_cfg = StrategyConfig(
                sw_runners=sw, hw_runners=hw, metrics=metrics, constraints=dict(constraints or {}),
                setup=Setup(n_trials=n_trials, sampler=strategy, seed=seed, sum_scaled_metrics=True, direction="maximize"),
            )
        except pydantic.ValidationError as exc:
            from bitscout.config._problems import describe_validation_error

            lines = describe_validation_error(exc, "search", owner="search()", fields=["constraints"])
            raise ConfigError("\n".join(line.replace("search.constraints", "constraints", 1) for line in lines)) from None
        built = build_runners(strategy_cfg, context)
        runner_set = built if fn_runner is None else RunnerSet(
            [fn_runner(fn_runner.Options(), context), *built.runners], context
        )
        with warnings.catch_warnings():
            # The objective's signs are the caller's directions, not a MASE config's: the
            # advice that MASE would add a cost (instead of subtracting it) is no news here.
            warnings.filterwarnings("ignore", message=r".* so bitscout subtracts", category=MetricWarning)
            score = Objective.from_config(strategy_cfg, runner_set)
        bounds = Constraints.from_config(strategy_cfg, runner_set) if constraints else None
        chosen = get_strategy(strategy)
        sampler = chosen.make_sampler(
            search_space, seed=seed, directions=score.directions, options=dict(strategy_options or {}),
            n_trials=n_trials, constraints=bounds.hardware_only if bounds else None,
        )
        tmp = None
        if out is None:
            tmp = tempfile.TemporaryDirectory(prefix="bitscout-")
            out_dir = Path(tmp.name)
        else:
            out_dir = Path(out)
        plot = None
        if out is not None:
            from bitscout.report import write_plots

            plot = write_plots
        # Optuna logs each study it creates and every trial at INFO: the result says more.
        verbosity = optuna.logging.get_verbosity()
        optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
        try:
            result = run_search(
                search_space, sampler, RunnerEvaluator(runner_set, score, constraints=bounds), out_dir=out_dir,
                storage=storage, study_name=study_name, n_trials=n_trials, timeout=timeout, n_jobs=n_jobs,
                progress=progress, write_outputs=out is not None, plot=plot, baseline=True,
            )
        finally:
            optuna.logging.set_verbosity(verbosity)
    finally:
        for module, training in flags:
            module.training = training
    baseline: Evaluation | None = result.baseline
    if data is not None and baseline is not None and dataset is not None:
        from bitscout.report import chance_level_note

        note = chance_level_note(baseline.metrics.all(), dataset.info.num_classes, dataset.info.class_names)
        if note is not None:
            warnings.warn(note, BitscoutWarning, stacklevel=2)
    return ApiSearchResult(
        result=result,
        baseline={} if baseline is None else baseline.metrics.all(),
        out=out_dir,
        _tmp=tmp,
    )
