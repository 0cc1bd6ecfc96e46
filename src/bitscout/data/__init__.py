"""Data sets held in memory as tensors, with seeded train/validation/test splits.

Use :func:`load_dataset` with a registered name (:func:`dataset_names`): ``digits``,
``mnist5k``, ``wine``, ``breast_cancer`` (bundled in installed packages), ``jsc`` (the Jet
Substructure Classification data, read from a file; as in MASE its validation split is
its training split) and ``synthetic`` (for tests only); or with a data file of your own
(``.npz``, ``.pt``, ``.csv``, ``.parquet``) or ``"package.module:factory"``.
:func:`as_dataset` turns arrays, tensors, torch Datasets and DataLoaders into a
:class:`Dataset`.
"""

from __future__ import annotations

from bitscout.data._base import (
    SPLIT_NAMES,
    Dataset,
    DatasetInfo,
    DatasetSource,
    Split,
    SplitName,
    check_finite,
    dataset_names,
    dataset_path_problem,
    get_dataset_source,
    load_dataset,
    register_dataset,
    stratified_splits,
    to_split,
)
from bitscout.data import _bundled, _synthetic  # noqa: F401  (registers the data sets)
from bitscout.data._user import (
    DATA_FILE_SUFFIXES,
    as_dataset,
    dataset_kind,
    dataset_problem,
    load_data_file,
    load_factory_data,
)
from bitscout.data._jsc import (
    JSC_CLASS_NAMES,
    JSC_ENV_VAR,
    JSC_FEATURES,
    JSC_FILE_NAMES,
    JSC_LABELS,
    find_jsc_file,
    read_jsc_file,
)

__all__ = [
    "DATA_FILE_SUFFIXES",
    "as_dataset",
    "dataset_kind",
    "dataset_problem",
    "load_data_file",
    "load_factory_data",
    "check_finite",
    "dataset_path_problem",
    "JSC_CLASS_NAMES",
    "JSC_ENV_VAR",
    "JSC_FEATURES",
    "JSC_FILE_NAMES",
    "JSC_LABELS",
    "find_jsc_file",
    "read_jsc_file",
    "SPLIT_NAMES",
    "SplitName",
    "Dataset",
    "DatasetInfo",
    "DatasetSource",
    "Split",
    "dataset_names",
    "get_dataset_source",
    "load_dataset",
    "register_dataset",
    "stratified_splits",
    "to_split",
]
