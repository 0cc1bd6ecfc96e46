"""Your own data: arrays, tensors, torch Datasets and DataLoaders, data files, factories.

:func:`as_dataset` turns what a PyTorch user already holds into bitscout's
:class:`~bitscout.data.Dataset`. A config's ``dataset`` reaches it in two ways besides a
registered name:

* a data file (:data:`DATA_FILE_SUFFIXES`): ``.npz`` (arrays ``x``/``y``, or
  ``x_train``/``y_train``/``x_val``/``y_val``/``x_test``/``y_test``), ``.pt``/``.pth`` (a
  dict of tensors with the same keys, read with ``weights_only=True``), ``.csv`` or
  ``.parquet`` (one row per sample, the labels in ``label_column``);
* ``"package.module:factory"``: a function returning any of what :func:`as_dataset` takes.

Data given as one ``x``/``y`` is split, stratified and seeded, into 60% training, 30%
validation and 10% test samples (as the bundled data sets), and its
:attr:`DatasetInfo.source` says so.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from bitscout.config._plugins import file_spec_hint, import_object, is_import_spec
from bitscout.config._problems import suggest
from bitscout.data._base import Dataset, DatasetInfo, Split, check_finite, get_dataset_source
from bitscout.errors import BitscoutError, BitscoutWarning, DataError

__all__ = [
    "DATA_FILE_SUFFIXES",
    "VAL_FRACTION",
    "TEST_FRACTION",
    "as_dataset",
    "dataset_kind",
    "dataset_problem",
    "load_data_file",
    "load_factory_data",
]

#: File suffix -> its format.
DATA_FILE_SUFFIXES: dict[str, str] = {
    ".npz": "npz",
    ".pt": "pt",
    ".pth": "pt",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Shares of one x/y that become the validation and the test split (the rest: training).
VAL_FRACTION = 0.3
TEST_FRACTION = 0.1

_SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train_dataloader": "train", "val_dataloader": "val", "test_dataloader": "test"}
_ARRAY_KEYS = {"x", "y", *(f"{v}_{s}" for v in "xy" for s in _SPLITS)}
_LABEL_KEYS = {"y", *(f"y_{s}" for s in _SPLITS)}
_KEYS_HINT = "arrays 'x' and 'y', or 'x_train', 'y_train', 'x_val', 'y_val' (and 'x_test', 'y_test')"
_OBJECTS_HINT = (
    "(x, y) arrays or tensors, a torch Dataset of (x, y) pairs, a DataLoader of (x, y) batches, "
    "or a dict of them by split ('train', 'val', 'test')"
)


def dataset_kind(spec: str) -> Literal["file", "factory", "registry"]:
    """How a config's ``dataset`` is read: a data file, a factory, or a registered name.

    A spec with a file suffix or a folder separator is a file; ``package.module:function``
    is a factory; anything else is a registered name.
    """
    path = Path(spec)
    if path.suffix.lower() in DATA_FILE_SUFFIXES or "/" in spec or "\\" in spec:
        return "file"
    if is_import_spec(spec):
        return "factory"
    return "file" if path.suffix else "registry"


# ----- objects -> Dataset ----------------------------------------------------------------


def as_dataset(
    data: Any,
    *,
    seed: int = 0,
    name: str = "data",
    source: str | None = None,
    single: Literal["split", "val"] = "split",
    class_names: Sequence[str] | None = None,
) -> Dataset:
    """Turn data a PyTorch user holds into a bitscout :class:`Dataset`.

    Args:
        data: One of: a :class:`Dataset` (returned as it is); ``(x, y)`` numpy arrays or
            tensors; a mapping with ``x``/``y`` or ``x_train``/``y_train``/``x_val``/
            ``y_val`` (``x_test``/``y_test`` optional); a mapping from ``"train"``,
            ``"val"``, ``"test"`` to any of the single-split forms; a torch
            ``Dataset`` whose items are ``(x, y)`` pairs; a ``DataLoader`` of ``(x, y)``
            batches. Labels are class indices ``0..K-1``, or text (class names: sorted,
            then numbered, unless ``class_names`` gives the order).
        seed: Seed of the split of a single ``x``/``y``.
        name: The data set's name in :class:`DatasetInfo` (for messages).
        source: Where the data came from, for messages; default: its type.
        single: What one ``x``/``y`` becomes: ``"split"``: 60/30/10% training,
            validation and test splits (stratified, seeded); ``"val"``: the validation
            split, with empty training and test splits (data to evaluate on only).
        class_names: One name per class; default ``"0"``, ``"1"``, ...

    Returns:
        The data set: inputs float32 on the CPU, labels int64.

    Raises:
        DataError: The object is none of these, shapes disagree, or labels are not class
            indices; the message names ``name`` and the part that is wrong.
    """
    if isinstance(data, Dataset):
        return data
    where = f"dataset {name!r}"
    source = source or type(data).__name__
    data, class_names = _encode_text_labels(data, class_names, where)
    splits = _splits_of(data, where)
    if splits is None:
        x, y = _pair(data, where)
        return _from_single(x, y, seed=seed, name=name, source=source, single=single, class_names=class_names)
    if "val" not in splits:
        given = ", ".join(splits) or "none"
        raise DataError(
            f"{where}: has no validation split (splits given: {given}); bitscout measures "
            "candidates on it. Add 'val' (x_val/y_val), or give a single x/y to be split"
        )
    return _assemble(splits, name=name, source=source, class_names=class_names)


def _map_labels(data: Any, fn: Callable[[Any], Any]) -> Any:
    """``data`` with ``fn`` applied to each of its label arrays (a new container).

    Only the forms that hold whole label arrays: a mapping of arrays (``y``,
    ``y_train``, ...), ``(x, y)``, and a dict of splits of those. A torch Dataset or a
    DataLoader yields tensors, never text, and is left as it is.
    """
    if isinstance(data, Mapping):
        if {str(k) for k in data} & _ARRAY_KEYS:
            return {k: fn(v) if str(k) in _LABEL_KEYS else v for k, v in data.items()}
        return {k: _map_labels(v, fn) if isinstance(v, (Mapping, tuple, list)) else v for k, v in data.items()}
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return (data[0], fn(data[1]))
    return data


def _text_array(value: Any) -> np.ndarray | None:
    """``value`` as an array of str when it holds text labels; None otherwise."""
    if isinstance(value, torch.Tensor):
        return None
    try:
        array = np.asarray(value)
    except Exception:
        return None  # reported where the labels are read
    if array.dtype.kind in "US":
        return array.astype(str)
    if array.dtype.kind == "O" and array.size and all(isinstance(v, (str, bytes)) for v in array.reshape(-1)):
        return np.array([v.decode() if isinstance(v, bytes) else v for v in array.reshape(-1)]).reshape(array.shape)
    return None


def _encode_text_labels(
    data: Any, class_names: Sequence[str] | None, where: str
) -> tuple[Any, Sequence[str] | None]:
    """Text labels (``"cat"``, ``"dog"``) -> class indices, and the class names.

    The classes are the labels' distinct values sorted, then numbered, as a CSV or Parquet
    ``label_column`` of names is read; with ``class_names`` given, a label's index is its
    position there. Every split is numbered with the same classes.

    Raises:
        DataError: Some splits' labels are text and others numbers, or a label is not in
            ``class_names``.
    """
    arrays: list[Any] = []
    _map_labels(data, lambda y: arrays.append(y))
    texts = [_text_array(y) for y in arrays]
    if all(t is None for t in texts):
        return data, class_names
    if any(t is None for t in texts):
        raise DataError(
            f"{where}: some label arrays hold text and some numbers; give every split's labels "
            "the same way (all class names, or all class indices 0..K-1)"
        )
    labels = {str(v) for t in texts for v in t.reshape(-1)}
    names = sorted(labels) if class_names is None else [str(c) for c in class_names]
    unknown = sorted(labels - set(names))
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (", ..." if len(unknown) > 5 else "")
        listed = ", ".join(map(repr, names[:10])) + (", ..." if len(names) > 10 else "")
        raise DataError(
            f"{where}: label(s) {shown} are not in class_names ({listed}); add them to "
            "class_names, or correct the labels"
        )
    index = {name: i for i, name in enumerate(names)}
    encoded = iter([np.array([index[v] for v in t.reshape(-1)], dtype=np.int64).reshape(t.shape) for t in texts])
    return _map_labels(data, lambda _: next(encoded)), names


def _splits_of(data: Any, where: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | None:
    """The splits of a mapping by split (None: ``data`` is one split)."""
    if not isinstance(data, Mapping):
        return None
    keys = {str(k) for k in data}
    if keys <= {"x", "y"} and keys:
        return None
    if keys & _ARRAY_KEYS and not keys & {"train", "val", "test", *_SPLIT_ALIASES}:
        unknown = sorted(keys - _ARRAY_KEYS)
        if unknown:
            raise DataError(f"{where}: unknown key(s) {unknown}; expected {_KEYS_HINT}")
        if "x" in keys or "y" in keys:
            raise DataError(
                f"{where}: holds both 'x'/'y' and per-split arrays ({sorted(keys)}); give one form: {_KEYS_HINT}"
            )
        splits = {}
        for split in _SPLITS:
            xk, yk = f"x_{split}", f"y_{split}"
            if (xk in keys) != (yk in keys):
                missing = yk if xk in keys else xk
                raise DataError(f"{where}: has {xk if xk in keys else yk!r} but no {missing!r}")
            if xk in keys:
                splits[split] = (_inputs(data[xk], f"{where}: {xk}"), _labels(data[yk], f"{where}: {yk}"))
        return splits
    splits = {}
    for key, value in data.items():
        split = _SPLIT_ALIASES.get(str(key), str(key))
        if split not in _SPLITS:
            raise DataError(
                f"{where}: unknown split {key!r}; a dict of data must have the splits "
                f"'train', 'val', 'test' as keys, or {_KEYS_HINT}"
            )
        splits[split] = _pair(value, f"{where}: split {key!r}")
    return splits


def _pair(data: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` tensors of one split given in any accepted form."""
    if isinstance(data, Split):
        return data.x, data.y
    if isinstance(data, Mapping) and set(data) == {"x", "y"}:
        return _inputs(data["x"], f"{where}: x"), _labels(data["y"], f"{where}: y")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return _inputs(data[0], f"{where}: x"), _labels(data[1], f"{where}: y")
    from torch.utils.data import DataLoader
    from torch.utils.data import Dataset as TorchDataset

    if isinstance(data, DataLoader):
        return _collect(iter(data), where, "batch")
    if isinstance(data, TorchDataset):
        items = (data[i] for i in range(len(data))) if hasattr(data, "__len__") else iter(data)
        xs, ys = _collect(items, where, "item", stack=True)
        return xs, ys
    raise DataError(f"{where}: cannot read a {type(data).__name__} as samples and labels; give {_OBJECTS_HINT}")


def _collect(
    items: Any, where: str, unit: str, *, stack: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    for index, item in enumerate(items):
        if isinstance(item, Mapping) and {"x", "y"} <= set(item):
            item = (item["x"], item["y"])
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise DataError(
                f"{where}: {unit} {index} is a {type(item).__name__}, not an (x, y) pair; "
                f"each {unit} must be (inputs, labels)"
            )
        x, y = (torch.as_tensor(np.asarray(v)) if not isinstance(v, torch.Tensor) else v for v in item)
        xs.append(x.detach().cpu()[None] if stack else x.detach().cpu())
        ys.append(y.detach().cpu().reshape(1) if stack else y.detach().cpu().reshape(-1))
    if not xs:
        raise DataError(f"{where}: holds no samples")
    try:
        x_all, y_all = torch.cat(xs), torch.cat(ys)
    except RuntimeError as exc:
        raise DataError(f"{where}: its {unit}s do not have one input shape: {exc}") from None
    return _inputs(x_all, f"{where}: x"), _labels(y_all, f"{where}: y")


def _as_array(value: Any, where: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise DataError(f"{where}: cannot be read as an array: {exc}") from None
    return array


def _inputs(value: Any, where: str) -> torch.Tensor:
    array = _as_array(value, where)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where}: inputs must be numbers; got an array of dtype {array.dtype}")
    if array.ndim < 2:
        raise DataError(
            f"{where}: inputs must have shape (samples, features...); got shape {array.shape}. "
            "For one feature per sample, reshape to (samples, 1)"
        )
    check_finite(array, where=where)
    return _tensor(array, np.float32)


def _tensor(array: np.ndarray, dtype: type[np.generic]) -> torch.Tensor:
    out = np.ascontiguousarray(array, dtype=dtype)
    if not out.flags.writeable:
        # A read-only buffer (a Parquet column read through Arrow, a memory-mapped
        # file): torch.from_numpy would warn that writing to it is undefined.
        out = out.copy()
    return torch.from_numpy(out)


def _labels(value: Any, where: str) -> torch.Tensor:
    array = _as_array(value, where)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DataError(
            f"{where}: labels must be one class index per sample, shape (samples,); got shape "
            f"{array.shape} (one-hot labels: take argmax(1))"
        )
    if array.dtype.kind not in "biuf" or (
        array.dtype.kind == "f" and not np.array_equal(array, np.round(array))
    ):
        raise DataError(
            f"{where}: labels must be integer class indices 0..K-1 (bitscout searches classifiers); "
            f"got dtype {array.dtype}"
        )
    if array.size and array.min() < 0:
        raise DataError(f"{where}: labels must be class indices >= 0; found {array.min()}")
    return _tensor(array, np.int64)


def _from_single(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int,
    name: str,
    source: str,
    single: Literal["split", "val"],
    class_names: Sequence[str] | None,
) -> Dataset:
    where = f"dataset {name!r}"
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{where}: {x.shape[0]} samples but {y.shape[0]} labels")
    if single == "val":
        splits = {"val": (x, y)}
        return _assemble(splits, name=name, source=source, class_names=class_names)
    n = len(y)
    if n < 3:
        raise DataError(f"{where}: {n} sample(s) cannot be split into train, validation and test parts")
    n_val, n_test = math.ceil(VAL_FRACTION * n), math.ceil(TEST_FRACTION * n)
    parts, how = _split_indices(y.numpy(), n_val, n_test, seed)
    splits = {split: (x[index], y[index]) for split, index in zip(_SPLITS, parts)}
    note = (
        f"{source} (one x/y, split {how} with seed {seed}: {len(parts[0])} train / "
        f"{len(parts[1])} val / {len(parts[2])} test)"
    )
    return _assemble(splits, name=name, source=note, class_names=class_names)


def _split_indices(y: np.ndarray, n_val: int, n_test: int, seed: int) -> tuple[list[np.ndarray], str]:
    """Indices of the train, val and test parts: stratified when every class allows it."""
    index = np.arange(len(y))
    _, counts = np.unique(y, return_counts=True)
    if counts.min() >= 3 and len(counts) <= min(n_val, n_test):
        from sklearn.model_selection import train_test_split  # seconds of import: only here

        rest, val = train_test_split(index, test_size=n_val, random_state=seed, stratify=y)
        train, test = train_test_split(rest, test_size=n_test, random_state=seed, stratify=y[rest])
        return [np.sort(train), np.sort(val), np.sort(test)], "stratified"
    # Too few samples of some class to stratify: a seeded shuffle.
    order = np.random.default_rng(seed).permutation(len(y))
    val, test, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
    return [np.sort(train), np.sort(val), np.sort(test)], "at random"


def _assemble(
    splits: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    *,
    name: str,
    source: str,
    class_names: Sequence[str] | None,
) -> Dataset:
    where = f"dataset {name!r}"
    shapes = {split: tuple(x.shape[1:]) for split, (x, _) in splits.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{s} {shape}" for s, shape in shapes.items())
        raise DataError(f"{where}: the splits' samples differ in shape ({listed}); they must be one shape")
    for split, (x, y) in splits.items():
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{where}: split {split!r} has {x.shape[0]} samples but {y.shape[0]} labels")
    input_shape = next(iter(shapes.values()))
    present = [y for _, y in splits.values() if len(y)]
    if not present:
        raise DataError(f"{where}: holds no samples")
    largest = int(max(int(y.max()) for y in present))
    num_classes = largest + 1 if class_names is None else len(class_names)
    if largest >= num_classes:
        raise DataError(
            f"{where}: label {largest} is out of range for {num_classes} class names; labels are 0..{num_classes - 1}"
        )
    if num_classes < 2:
        raise DataError(f"{where}: every label is 0; a classifier needs at least two classes")
    names = tuple(str(c) for c in range(num_classes)) if class_names is None else tuple(map(str, class_names))
    empty = (torch.zeros((0, *input_shape)), torch.zeros((0,), dtype=torch.int64))
    built = {split: Split(*splits.get(split, empty)) for split in _SPLITS}
    info = DatasetInfo(
        name=name, input_shape=input_shape, num_classes=num_classes, class_names=names, source=source
    )
    return Dataset(info=info, **built)


# ----- files -------------------------------------------------------------------------------


def load_data_file(path: str | Path, *, seed: int = 0, label_column: str | None = None) -> Dataset:
    """Read a data file (:data:`DATA_FILE_SUFFIXES`) into a :class:`Dataset`.

    Args:
        path: The file; relative to the current folder.
        seed: Seed of the split when the file holds one ``x``/``y``.
        label_column: The label column of a CSV or Parquet file (required for those).

    Raises:
        DataError: The file is missing, of an unknown kind, unreadable, or its content is
            not data bitscout can use; the message names the file.
    """
    path = Path(path)
    problem = _file_problem(path, label_column)
    if problem is not None:
        raise DataError(problem)
    kind = DATA_FILE_SUFFIXES[path.suffix.lower()]
    name = str(path)
    if kind in ("csv", "parquet"):
        assert label_column is not None  # _file_problem requires it
        x, y, class_names = _read_table(path, kind, label_column)
        return _from_single(
            x, y, seed=seed, name=name, source=str(path), single="split", class_names=class_names
        )
    content = _read_npz(path) if kind == "npz" else _read_pt(path)
    class_names = None
    if isinstance(content, dict) and "class_names" in content:
        class_names = [str(c) for c in np.asarray(content.pop("class_names")).reshape(-1)]
    return as_dataset(content, seed=seed, name=name, source=str(path), class_names=class_names)


def _file_problem(path: Path, label_column: str | None) -> str | None:
    kind = DATA_FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(DATA_FILE_SUFFIXES)
        return (
            f"dataset {str(path)!r}: unknown kind of data file {path.suffix or '(no suffix)'!r}; "
            f"bitscout reads {known}, a registered name, or 'package.module:factory'"
            f"{file_spec_hint(str(path))}"
        )
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative to the current folder, {Path.cwd()})"
        return f"dataset {str(path)!r}: file not found{where}"
    if kind in ("csv", "parquet") and label_column is None:
        return (
            f"dataset {str(path)!r}: a {kind.upper() if kind == 'csv' else 'Parquet'} table needs "
            "label_column = \"...\" in the config, naming the column of class labels"
        )
    if kind not in ("csv", "parquet") and label_column is not None:
        return f"dataset {str(path)!r}: label_column is only for CSV and Parquet tables; remove it"
    return None


def _read_npz(path: Path) -> dict[str, Any]:
    import zipfile

    if not zipfile.is_zipfile(path):  # np.load would take it for a pickle
        raise DataError(f"dataset {str(path)!r}: not a readable .npz file (not a zip archive); write it with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataError(
                f"dataset {str(path)!r}: holds Python objects (pickled arrays of dtype=object), "
                "which bitscout does not unpickle; save numeric arrays, and text labels as strings "
                "(np.asarray(y, dtype=str)), with numpy.savez"
            ) from None
        raise DataError(f"dataset {str(path)!r}: not a readable .npz file: {exc}") from None
    except Exception as exc:
        raise DataError(f"dataset {str(path)!r}: not a readable .npz file: {type(exc).__name__}: {exc}") from None


def _read_pt(path: Path) -> Any:
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"dataset {str(path)!r}: cannot be read with torch.load(weights_only=True): {reason}. "
            "Save a dict of tensors: torch.save({'x': x, 'y': y}, path)"
        ) from None
    if isinstance(content, Mapping):
        return dict(content)
    if isinstance(content, (tuple, list)) and len(content) == 2:
        return {"x": content[0], "y": content[1]}
    raise DataError(
        f"dataset {str(path)!r}: holds a {type(content).__name__}; save a dict of tensors "
        f"with {_KEYS_HINT}"
    )


def _warn_of_row_numbers(table: Any, where: str) -> None:
    """Warn of a feature column that numbers the rows (an ID, an index written by pandas).

    Every column but the labels is a feature: a ``patient_id`` column silently became an
    input (a model for the other columns then fails on its input size, or one with
    room for it learns the row order).
    """
    import pandas as pd

    for column in table.columns:
        values = table[column]
        if len(values) < 3 or not pd.api.types.is_integer_dtype(values):
            continue
        low, high = int(values.min()), int(values.max())
        if high - low + 1 == len(values) and values.is_unique:
            warnings.warn(
                f"{where}: column {str(column)!r} holds each whole number from {low} to {high} once, "
                "like a row number or an ID, and is read as a feature (every column but label_column "
                "is one); if it is an ID, drop it from the file",
                BitscoutWarning,
                stacklevel=2,
            )


def _warn_of_unused_classes(y: np.ndarray, where: str, label_column: str) -> None:
    """Warn when integer labels leave class indices below their largest without a sample.

    Integer labels are class indices: labels 1 and 2 make 3 classes, the first empty, and
    a 2-output model is refused for having 2 outputs. Labels counted from 1 (as in R or
    MATLAB) are the usual cause.
    """
    if not y.size or y.min() < 0:
        return  # negative labels are refused where they are read
    present = np.unique(y)
    missing = sorted(set(range(int(present.max()) + 1)) - {int(v) for v in present})
    if missing:
        shown = ", ".join(str(int(v)) for v in present[:6]) + (", ..." if len(present) > 6 else "")
        holes = ", ".join(str(v) for v in missing[:6]) + (", ..." if len(missing) > 6 else "")
        warnings.warn(
            f"{where}: column {label_column!r} holds the labels {shown}, read as class indices: "
            f"the data has {int(present.max()) + 1} classes, and class(es) {holes} have no sample. "
            "If the labels count from 1, subtract 1 in the file (or write them as names: names are "
            "sorted, then numbered from 0)",
            BitscoutWarning,
            stacklevel=3,
        )


def _read_table(path: Path, kind: str, label_column: str) -> tuple[torch.Tensor, torch.Tensor, list[str] | None]:
    import pandas as pd

    try:
        table = pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except Exception as exc:
        raise DataError(f"dataset {str(path)!r}: cannot read the {kind} table: {type(exc).__name__}: {exc}") from None
    where = f"dataset {str(path)!r}"
    if label_column not in table.columns:
        columns = [str(c) for c in table.columns]
        shown = ", ".join(repr(c) for c in columns[:12]) + (", ..." if len(columns) > 12 else "")
        hint = suggest(label_column, columns)
        hint = f"; {hint}" if hint.startswith("did you mean") else ""
        raise DataError(f"{where}: has no column {label_column!r} (label_column); its columns: {shown}{hint}")
    labels = table.pop(label_column)
    if table.shape[1] == 0:
        raise DataError(f"{where}: has no feature columns besides the labels {label_column!r}")
    text = [str(c) for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if text:
        raise DataError(
            f"{where}: feature column(s) {text} are not numeric; encode them as numbers (or drop them) first"
        )
    if labels.isna().any():
        raise DataError(f"{where}: column {label_column!r} has missing labels in {int(labels.isna().sum())} row(s)")
    missing = table.isna().to_numpy()
    if missing.any():
        # Named by column and row here: once the table is an array, only "feature 3" is known.
        row, col = (int(i[0]) for i in np.nonzero(missing))
        line = f" (line {row + 2} of the file)" if kind == "csv" else ""
        raise DataError(
            f"{where}: {int(missing.sum())} missing value(s) in the feature columns, the first in "
            f"column {str(table.columns[col])!r}, row {row}{line}; fill them or drop those rows: "
            "every metric would be NaN"
        )
    _warn_of_row_numbers(table, where)
    class_names: list[str] | None = None
    if pd.api.types.is_integer_dtype(labels):
        y = labels.to_numpy()
        _warn_of_unused_classes(y, where, label_column)
    else:
        # Class names (strings, or numbers that are not class indices): index them in sorted order.
        codes, uniques = pd.factorize(labels, sort=True)
        y, class_names = codes, [str(u) for u in uniques]
    return _inputs(table.to_numpy(dtype=np.float64), where), _labels(y, f"{where}: column {label_column!r}"), class_names


# ----- factories ---------------------------------------------------------------------------


def load_factory_data(spec: str, *, seed: int = 0) -> Dataset:
    """Call a ``"package.module:factory"`` and read what it returns with :func:`as_dataset`.

    The factory is called with ``seed=seed`` when it declares a ``seed`` parameter, else
    with no arguments.

    Raises:
        DataError: The factory cannot be imported, is not callable, raises, or returns
            something :func:`as_dataset` cannot read; the message names the spec.
    """
    factory = import_object(spec, what="dataset", error=DataError)
    attr = spec.partition(":")[2]
    if not callable(factory):
        raise DataError(f"dataset {spec!r}: {attr!r} is not callable")
    kwargs = {"seed": seed} if "seed" in _parameters(factory) else {}
    try:
        data = factory(**kwargs)
    except BitscoutError:
        raise
    except Exception as exc:
        raise DataError(
            f"dataset {spec!r}: calling {attr}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) "
            f"failed: {type(exc).__name__}: {exc}"
        ) from exc
    return as_dataset(data, seed=seed, name=spec, source=spec)


def _parameters(function: Any) -> Mapping[str, inspect.Parameter]:
    try:
        return inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin or C function without a signature
        return {}


def dataset_problem(spec: str, *, label_column: str | None = None) -> str | None:
    """What is wrong with a config's ``dataset``, found without loading any data.

    A file must exist and be of a known kind (with ``label_column`` for a table); a
    factory must import and be callable; a name must be registered.

    Returns:
        The problem in one line, or None.
    """
    kind = dataset_kind(spec)
    if kind == "file":
        return _file_problem(Path(spec), label_column)
    if label_column is not None:
        return f"dataset {spec!r}: label_column is only for CSV and Parquet files; remove it"
    try:
        if kind == "factory":
            if not callable(import_object(spec, what="dataset", error=DataError)):
                return f"dataset {spec!r}: {spec.partition(':')[2]!r} is not callable"
        else:
            get_dataset_source(spec)
    except BitscoutError as exc:
        return str(exc)
    return None
