"""What ``bitscout search CONFIG`` does, as two calls: :func:`prepare_search` and ``.run()``.

:func:`prepare_search` builds every object of a search from a loaded config (data,
model with its checkpoint, traced layer table, quantizer, space, runners, objective,
sampler) and checks them all before any trial runs; :meth:`PreparedSearch.run` hands
them to :func:`~bitscout.study.run_search`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bitscout.config import BitscoutConfigWarning, check_outputs_are_ours, check_outputs_spare_inputs
from bitscout.errors import BitscoutWarning, ConfigError
from bitscout.evaluation import Evaluator, RunnerEvaluator, TableEvaluator, exhaustive_support, needs_loss
from bitscout.strategies import Exhaustible
from bitscout.study._budget import check_budget_reachable
from bitscout.study._clipping import clipped_tensors
from bitscout.study._outputs import PlotWriter
from bitscout.study._records import SearchResult
from bitscout.study._search import run_search

if TYPE_CHECKING:
    import optuna

    from bitscout.config import Config
    from bitscout.experiment import Experiment
    from bitscout.graph import TracedModel
    from bitscout.metrics import Constraints, Objective, RunnerSet
    from bitscout.quant import Calibration
    from bitscout.space import SearchSpace

__all__ = ["PreparedSearch", "prepare_search", "search_from_config", "default_run_dir"]

# Samples of the evaluation split used to trace the model (shapes are per sample).
_TRACE_BATCH = 2

#: What a search writes in its run folder (docs: README "What a search writes").
RUN_OUTPUTS = (
    "study.journal", "study.journal.*", "log.json", "trials.csv", "best.json", "config.toml",
    "calibration.json", "report.html", "objective.png", "pareto_*.png", "best_widths.png",
    "sensitivity.png",
)


def default_run_dir(config: Config) -> Path:
    """``config.out`` when set, else ``runs/<project>/search``."""
    if config.out is not None:
        return Path(config.out)
    return Path("runs") / (config.project or "bitscout") / "search"


@dataclass
class PreparedSearch:
    """Every object a search needs, built and checked from one config.

    Attributes:
        config: The resolved config.
        experiment: Data set, model (checkpoint loaded) and device.
        traced: The traced float model and its layer table.
        space: The search space.
        runners: The configured metric runners.
        objective: The objective.
        strategy: The strategy (from :func:`bitscout.strategies.get_strategy`).
        sampler: The Optuna sampler the strategy made for this space.
        out_dir: The run folder.
        calibration: The activation ranges every trial shares (written to
            ``calibration.json`` in the run folder).
        folded: Layers that absorbed a BatchNorm -> the BatchNorm's module path.
        constraints: The constraints of ``[search.strategy.constraints]`` (None: none).
    """

    config: Config
    experiment: Experiment
    traced: TracedModel
    space: SearchSpace
    runners: RunnerSet
    objective: Objective
    strategy: Any
    sampler: optuna.samplers.BaseSampler
    out_dir: Path
    calibration: Calibration | None = None
    folded: dict[str, str] = field(default_factory=dict)
    constraints: Constraints | None = None

    def run(
        self,
        *,
        progress: bool = True,
        n_jobs: int | None = None,
        write_outputs: bool = True,
        precompute: bool = True,
        cpu_threads: int | None = 1,
        plot: PlotWriter | None = None,
        table_pass: bool = True,
    ) -> SearchResult:
        """Run (or resume) the search the config describes; see :func:`run_search`.

        A brute-force search that will visit the whole space on a local study, with
        post-training evaluation only, evaluates every configuration at once first
        (:class:`bitscout.evaluation.TableEvaluator`: batched, sharing the work of common
        layer prefixes, bit-identical to trial-by-trial evaluation); the trials then read
        their metrics from that table. ``precompute=False`` turns this
        off (the worker processes of ``--workers`` share the trials instead).

        On the CPU the trials run on ``cpu_threads`` intra-op threads (default 1): a trial
        is small, and on a small machine torch's threads fight the sampler, the storage
        and other processes (measured here: 19.5 ms per digits-MLP trial on 2 threads,
        3.6 ms on 1). ``None`` keeps torch's setting. The setting is restored afterwards.

        ``table_pass``: see :func:`run_search` (False: the table's trials go through the
        loop one by one, as ``benchmarks/brute_force_search.py`` compares).
        """
        from bitscout.training import intra_op_threads

        setup = self.config.search.strategy.setup  # type: ignore[union-attr]
        if write_outputs and self.calibration is not None:
            from bitscout.quant import CALIBRATION_FILE

            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.calibration.save(self.out_dir / CALIBRATION_FILE)
        threads = cpu_threads if self.experiment.device.type == "cpu" else None
        with intra_op_threads(threads):
            return run_search(
                self.space,
                self.sampler,
                self.evaluator(precompute=precompute, progress=progress),
                out_dir=self.out_dir,
                config=self.config,
                storage=setup.storage,
                study_name=setup.study_name,
                n_trials=setup.n_trials,
                timeout=setup.timeout,
                n_jobs=setup.n_jobs if n_jobs is None else n_jobs,
                progress=progress,
                write_outputs=write_outputs,
                plot=plot,
                # The float model once: the summary shows it and every trial's drop from it.
                baseline=True,
                table_pass=table_pass,
                num_classes=self.experiment.dataset.info.num_classes,
                class_names=tuple(self.experiment.dataset.info.class_names),
            )

    def evaluator(self, *, precompute: bool = True, progress: bool = False) -> Evaluator:
        """The evaluator the trials use: a table of the whole space when that is worth it
        (a brute-force sampler that will visit the whole space on a local study, runners
        that :func:`~bitscout.evaluation.exhaustive_support` accepts), else the runners."""
        setup = self.config.search.strategy.setup  # type: ignore[union-attr]
        whole_space = setup.n_trials >= self.space.distinct_size
        if (
            not precompute
            or not isinstance(self.sampler, Exhaustible)
            or not whole_space
            or setup.storage is not None
            or exhaustive_support(self.runners) is not None
        ):
            return RunnerEvaluator(self.runners, self.objective, constraints=self.constraints)
        if progress:
            skipped = (
                ""
                if needs_loss(self.objective, self.constraints)
                else "; no objective or constraint reads the loss, so it is not computed"
            )
            print(
                f"evaluating all {self.space.distinct_size:,} configurations at once "
                f"(batched, sharing common layer prefixes{skipped})...",
                flush=True,
            )
        return TableEvaluator.from_runners(
            self.space, self.runners, self.objective, constraints=self.constraints
        )


def prepare_search(config: Config, *, out: Path | None = None) -> PreparedSearch:
    """Build and check every object of the search a config describes.

    Args:
        config: A loaded config with a ``[search]`` section.
        out: The run folder; default :func:`default_run_dir`.

    Raises:
        ConfigError: The config has no ``[search]`` section, or a part of it is invalid.
        BitscoutError: Data, model, checkpoint or space problems (their own subclasses).
    """
    from bitscout.experiment import Experiment
    from bitscout.metrics import Constraints, Objective, RunContext, build_runners
    from bitscout.quant import Quantizer, prepare_ptq
    from bitscout.space import SearchSpace
    from bitscout.strategies import get_strategy

    if config.search is None:
        where = f" {config.source}" if config.source is not None else ""
        raise ConfigError(
            f"the config{where} has no [search] section; add [search.search_space] and "
            "[search.strategy] (see configs/digits.toml for an example)"
        )
    run_dir = Path(out) if out is not None else default_run_dir(config)
    check_outputs_spare_inputs(config, run_dir, RUN_OUTPUTS, f"run folder {run_dir}")
    # The run folder's journal is appended to unless the study lives elsewhere (--storage).
    journal = config.search.strategy.setup.storage is None
    check_outputs_are_ours(run_dir, f"run folder {run_dir}", journal=journal)
    experiment = Experiment.from_config(config)
    split = experiment.dataset.val if len(experiment.dataset.val) else experiment.dataset.train
    example = split.x[:_TRACE_BATCH].to(experiment.device)
    strategy_cfg = config.search.strategy
    # Calibrated once here and shared by every trial (docs/formats.md); BatchNorm folds
    # only for post-training (eval-mode) searches.
    calibration_x = experiment.dataset.train.x[: config.calibration_samples].to(experiment.device)
    prepared = prepare_ptq(
        experiment.model,
        example,
        calibration_x,
        fold_bn=config.fold_bn and strategy_cfg.eval_mode,
        observer=config.calibration_observer,
        percentile=config.calibration_percentile,
        batch_size=config.batch_size,
        source=f"train[:{len(calibration_x)}]",
    )
    traced = prepared.traced
    space = SearchSpace.from_config(config.search.search_space, traced.table)
    clipped = clipped_tensors(space, traced, prepared.calibration)
    if clipped:
        # Every trial would measure a saturated model: say so before the first one.
        warnings.warn(
            "every candidate of this search saturates a tensor, so every trial measures a broken "
            "model:\n  " + "\n  ".join(clipped),
            BitscoutWarning,
            stacklevel=2,
        )
    setup = strategy_cfg.setup
    if not strategy_cfg.eval_mode:
        warnings.warn(
            "search.strategy.eval_mode = false does not change the evaluation: bitscout "
            "evaluates every candidate in eval mode (model.eval(); basic_train fine-tunes in "
            "train mode first). It only keeps BatchNorm unfolded (as fold_bn = false would). "
            "The key is accepted for MASE configs and is not part of the study's "
            "fingerprint; remove it to silence this warning.",
            BitscoutConfigWarning,
            stacklevel=2,
        )
    context = RunContext(
        traced=traced,
        quantizer=Quantizer(traced, calibration=prepared.calibration),
        dataset=experiment.dataset,
        device=experiment.device,
        batch_size=config.batch_size,
        seed=config.seed,
    )
    runners = build_runners(strategy_cfg, context)
    objective = Objective.from_config(strategy_cfg, runners)
    constraints = Constraints.from_config(strategy_cfg, runners)
    if constraints:
        # A budget no configuration meets would skip every trial unmeasured: say so now.
        check_budget_reachable(space, constraints)
    strategy = get_strategy(strategy_cfg.strategy_name)
    seed = setup.seed if setup.seed is not None else config.seed
    sampler = strategy.make_sampler(
        space,
        seed=seed,
        directions=objective.directions,
        options=setup.sampler_options,
        n_trials=setup.n_trials,
        # What the configuration alone decides: brute force and sensitivity never
        # propose a configuration these rule out.
        constraints=constraints.hardware_only if constraints else None,
    )
    return PreparedSearch(
        config=config,
        experiment=experiment,
        traced=traced,
        space=space,
        runners=runners,
        objective=objective,
        strategy=strategy,
        sampler=sampler,
        out_dir=Path(out) if out is not None else default_run_dir(config),
        calibration=prepared.calibration,
        folded=prepared.folded,
        constraints=constraints if constraints else None,
    )


def search_from_config(
    config: Config, *, out: Path | None = None, progress: bool = True, plot: PlotWriter | None = None
) -> SearchResult:
    """Run the search a config describes (what ``bitscout search CONFIG`` does, with
    ``plot=bitscout.report.write_plots``)."""
    return prepare_search(config, out=out).run(progress=progress, plot=plot)
