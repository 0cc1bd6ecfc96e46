"""The dataset records every other package works with, and the dataset registry.

Data sets in bitscout are small enough to live in memory: each split is a pair of
tensors, and evaluation slices them directly instead of going through a DataLoader.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch

from bitscout.config._rules import SPLIT_NAMES as _CONFIG_SPLIT_NAMES
from bitscout.errors import DataError

__all__ = [
    "DatasetInfo",
    "Split",
    "Dataset",
    "DatasetSource",
    "register_dataset",
    "get_dataset_source",
    "dataset_names",
    "load_dataset",
    "stratified_splits",
    "SPLIT_NAMES",
    "SplitName",
    "to_split",
    "check_finite",
    "dataset_path_problem",
]

#: A split's name: bitscout's, or MASE's data-loader name for the same split (for
#: options models that take a split, such as a runner's ``data_loader``). The names are
#: the config's vocabulary, so the config judges them by the same list.
SplitName = Literal[_CONFIG_SPLIT_NAMES]  # type: ignore[valid-type]

#: Every name of :data:`SplitName` -> the split it means.
SPLIT_NAMES: dict[str, str] = {name: name.removesuffix("_dataloader") for name in _CONFIG_SPLIT_NAMES}


@dataclass(frozen=True)
class DatasetInfo:
    """What a model builder needs to know about a data set.

    Attributes:
        name: Registry name of the data set (``"digits"``, ``"jsc"``, ...).
        input_shape: Shape of one sample, without the batch dimension.
        num_classes: Number of classes.
        class_names: One name per class, in label order.
        source: Where the data came from (a package or a file path), for messages.
        synthetic: True for generated data that says nothing about real accuracy.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    source: str
    synthetic: bool = False


@dataclass(frozen=True)
class Split:
    """One split of a data set held as tensors.

    Attributes:
        x: Inputs, float32, shape ``(n, *input_shape)``.
        y: Class labels, int64, shape ``(n,)``.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.shape[0] != self.y.shape[0]:
            raise DataError(
                f"a split must have as many labels as samples; got {self.x.shape[0]} "
                f"samples and {self.y.shape[0]} labels"
            )

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True)
class Dataset:
    """A data set: its info and its train, validation and test splits."""

    info: DatasetInfo
    train: Split
    val: Split
    test: Split

    def split(self, name: str) -> Split:
        """Return a split by name.

        Args:
            name: ``"train"``, ``"val"`` or ``"test"``, or MASE's
                ``"train_dataloader"``, ``"val_dataloader"``, ``"test_dataloader"``.

        Raises:
            DataError: The name is none of these.
        """
        key = SPLIT_NAMES.get(name)
        if key is None:
            raise DataError(
                f"unknown split {name!r}; use one of {', '.join(repr(n) for n in SPLIT_NAMES)}"
            )
        return getattr(self, key)


class DatasetSource(abc.ABC):
    """A named data set bitscout can load.

    Subclasses set :attr:`name` and :attr:`description` and implement :meth:`load`.
    Register an instance with :func:`register_dataset` to make it available by name.
    A data set that reads no file (one bundled with a package, or generated) sets
    :attr:`reads_path` to False, so that a ``dataset_path`` given for it is refused
    instead of being silently ignored.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    reads_path: ClassVar[bool] = True

    @abc.abstractmethod
    def load(self, *, path: Path | None, seed: int) -> Dataset:
        """Load the data set.

        Args:
            path: A data file, for data sets that read one (``None``: look in the
                usual places). Data sets bundled in a package ignore it.
            seed: Seed of the random train/validation/test split.

        Raises:
            DataError: The data cannot be found or read.
        """


_REGISTRY: dict[str, DatasetSource] = {}


def register_dataset(source: DatasetSource) -> DatasetSource:
    """Make a data set available to :func:`load_dataset` under ``source.name``.

    Raises:
        ValueError: Another data set already has that name.
    """
    if source.name in _REGISTRY and type(_REGISTRY[source.name]) is not type(source):
        raise ValueError(f"a dataset named {source.name!r} is already registered")
    _REGISTRY[source.name] = source
    return source


def dataset_names() -> list[str]:
    """Names of every registered data set, sorted."""
    return sorted(_REGISTRY)


def get_dataset_source(name: str) -> DatasetSource:
    """Look a data set up by name.

    Raises:
        DataError: No data set has that name (the message lists those that exist).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; available: {', '.join(dataset_names())}"
        ) from None


def load_dataset(
    name: str, *, path: Path | None = None, seed: int = 0, label_column: str | None = None
) -> Dataset:
    """Load a data set: a registered one, a data file, or a factory's.

    Args:
        name: Registry name (see :func:`dataset_names`), a data file (``.npz``, ``.pt``,
            ``.csv``, ``.parquet``), or ``"package.module:factory"`` (see
            :func:`bitscout.data.as_dataset` for what the file or factory may hold).
        path: A data file, for registered data sets read from a file (``jsc``).
        seed: Seed of the train/validation/test split.
        label_column: The label column of a CSV or Parquet file.

    Raises:
        DataError: Unknown name; a ``path`` for a data set that reads no file; the data
            cannot be found or read; or it holds NaN or infinite values (the message
            names the source, the split and the first bad position).
    """
    from bitscout.data._user import dataset_kind, load_data_file, load_factory_data

    kind = dataset_kind(name)
    if kind == "file":
        dataset = load_data_file(name, seed=seed, label_column=label_column)
    elif label_column is not None:
        raise DataError(f"dataset {name!r}: label_column is only for CSV and Parquet files; remove it")
    elif kind == "factory":
        dataset = load_factory_data(name, seed=seed)
    else:
        source = get_dataset_source(name)
        problem = dataset_path_problem(source, path)
        if problem is not None:
            raise DataError(f"dataset_path: {problem}")
        dataset = source.load(path=path, seed=seed)
    for split_name in ("train", "val", "test"):
        check_finite(getattr(dataset, split_name).x, where=f"{dataset.info.source} ({split_name} split)")
    return dataset


def dataset_path_problem(source: DatasetSource, path: Path | str | None) -> str | None:
    """What is wrong with giving ``path`` to ``source``, or None (a file it reads, or no path)."""
    if path is None or source.reads_path:
        return None
    readers = ", ".join(n for n in dataset_names() if _REGISTRY[n].reads_path)
    return (
        f"dataset {source.name!r} reads no file, so dataset_path = {str(path)!r} would be "
        f"ignored; remove dataset_path, or use a data set read from a file ({readers})"
    )


def check_finite(values: torch.Tensor | np.ndarray, *, where: str) -> None:
    """Refuse NaN and infinite inputs, naming the first bad sample and feature.

    A NaN input makes every trial's loss NaN and its accuracy meaningless, without any
    error: it is better refused where the data is read.

    Args:
        values: Samples along the first dimension.
        where: The file or data set, for the message.

    Raises:
        DataError: The first bad value's sample index, feature position and value.
    """
    array = values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if not np.issubdtype(array.dtype, np.floating):
        return
    bad = ~np.isfinite(array)
    if not bad.any():
        return
    position = tuple(int(i) for i in np.argwhere(bad)[0])
    sample, feature = position[0], position[1:]
    at = f"sample {sample}" + (f", feature {feature[0] if len(feature) == 1 else feature}" if feature else "")
    raise DataError(
        f"{where}: {int(bad.sum())} value(s) are NaN or infinite, the first at {at} "
        f"({float(array[position])!r}); clean or drop those rows: every metric would be NaN"
    )


def stratified_splits(
    x: np.ndarray,
    y: np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Split arrays into stratified train, validation and test parts.

    The validation part holds ``ceil(val_fraction * n)`` samples and the test part
    ``ceil(test_fraction * n)`` (scikit-learn's rounding), the rest is training data.

    Returns:
        ``((x_train, y_train), (x_val, y_val), (x_test, y_test))``.
    """
    n = len(y)
    n_val = math.ceil(val_fraction * n)
    n_test = math.ceil(test_fraction * n)
    from sklearn.model_selection import train_test_split  # seconds of import: only when splitting

    x_rest, x_val, y_rest, y_val = train_test_split(
        x, y, test_size=n_val, random_state=seed, stratify=y
    )
    x_train, x_test, y_train, y_test = train_test_split(
        x_rest, y_rest, test_size=n_test, random_state=seed, stratify=y_rest
    )
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def to_split(x: np.ndarray, y: np.ndarray) -> Split:
    """Wrap numpy arrays as a :class:`Split` (float32 inputs, int64 labels)."""
    return Split(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        y=torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
    )
