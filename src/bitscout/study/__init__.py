"""Running a search: the trial loop, its storage, deduplication, resume, workers and files.

Owns the ask/evaluate/tell loop (:func:`run_search`, over any
:class:`bitscout.evaluation.Evaluator`), the study's storage and its fingerprint, the
records of a run (:class:`SearchResult`, :class:`TrialRecord`) and their files. It does
not draw plots (:mod:`bitscout.report` does) and knows nothing of comparisons
(:mod:`bitscout.compare`).

Typical use from Python::

    from bitscout.config import load_config
    from bitscout.study import prepare_search, SearchResult

    prepared = prepare_search(load_config("configs/digits.toml"))
    print(prepared.space.describe())
    result = prepared.run()            # or run_search(space, sampler, evaluator, ...)
    result.best                        # a TrialRecord (result.pareto for several objectives)
    SearchResult.load(result.run_dir)  # read a finished run back

The study lives in ``<run folder>/study.journal`` by default (Optuna's journal format,
``optuna-dashboard`` reads it) or in any Optuna storage URL. Running the same search
again on the same folder or storage resumes it up to ``n_trials`` in total.
"""

from __future__ import annotations

from bitscout.study._from_config import PreparedSearch, default_run_dir, prepare_search, search_from_config
from bitscout.study._index import DUPLICATE_ATTR, RECORD_ATTR, StudyIndex
from bitscout.study._outputs import CONFIG_FILE, CSV_FILE, PlotWriter, write_outputs, write_trials_csv
from bitscout.study._records import BEST_FILE, LOG_FILE, SearchResult, TrialRecord, pareto_front
from bitscout.study._result import record_from_trial, result_from_study, sampled_config
from bitscout.study._search import FIRST_FAILURES, fail_interrupted, run_search
from bitscout.study._pool import run_local_workers
from bitscout.study._worker_storage import HeartbeatSettings, fail_stale_trials, open_storage, open_worker_storage
from bitscout.study._store import JOURNAL_FILE, LocalJournalBackend
from bitscout.study._study_report import report_study, store_baseline, stored_baseline

__all__ = [
    "run_search",
    "prepare_search",
    "search_from_config",
    "PreparedSearch",
    "default_run_dir",
    "SearchResult",
    "TrialRecord",
    "pareto_front",
    "result_from_study",
    "record_from_trial",
    "sampled_config",
    "write_outputs",
    "PlotWriter",
    "write_trials_csv",
    "open_storage",
    "LocalJournalBackend",
    "StudyIndex",
    "fail_interrupted",
    "FIRST_FAILURES",
    "JOURNAL_FILE",
    "LOG_FILE",
    "BEST_FILE",
    "CSV_FILE",
    "CONFIG_FILE",
    "RECORD_ATTR",
    "DUPLICATE_ATTR",
    "HeartbeatSettings",
    "open_worker_storage",
    "fail_stale_trials",
    "report_study",
    "store_baseline",
    "stored_baseline",
    "run_local_workers",
]
