"""The Jet Substructure Classification (JSC) data set, read from the files people have.

Two sources are understood, recognised by their content, not their suffix:

* the original HDF5 file of the hls4ml / LogicNets distribution,
  ``processed-pythia82-lhc13-all-pt1-50k-r1_h022_e0175_t220_nonu_truth.z`` (HDF5 despite
  the ``.z``): a compound dataset ``t_allpar_new`` with the 16 feature fields and the 5
  one-hot label fields ``j_g, j_q, j_w, j_z, j_t``;
* OpenML's table ``hls4ml_lhc_jets_hlf`` (dataset 42468) saved as CSV (optionally
  gzip-compressed) or Parquet: the 16 feature columns and a ``class`` column holding
  ``g, q, w, z, t``.

Preprocessing is MASE's (``chop/dataset/physical/jsc``, after the hls4ml pytorch-training
loader): drop duplicate rows (over the 16 features and the label), split 80/20 with
``train_test_split(test_size=0.2, random_state=42)`` (not stratified, and the same for
every bitscout seed, so results compare with MASE's), and standardize with a
``StandardScaler`` fit on the 80% part.

As in MASE (and LogicNets, "citing lack of data"), the **validation split is the
training split**: MASE's ``val_dataloader`` serves the 80% part, and the held-out 20% is
its test split. A search that evaluates on ``val_dataloader`` therefore measures
training-set accuracy, exactly as MASE does; evaluate the chosen configuration on the
``test`` split for a held-out number.

The preprocessed arrays are cached next to the source file
(``<file>.bitscout-cache.npz``, or under ``~/.cache/bitscout/jsc/`` when that folder is
read-only) and rebuilt when the source's size or modification time changes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from bitscout._atomic import atomic_path
from bitscout.data._base import Dataset, DatasetInfo, DatasetSource, register_dataset, to_split
from bitscout.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "JSC_FEATURES",
    "JSC_LABELS",
    "JSC_CLASS_NAMES",
    "JSC_FILE_NAMES",
    "JSC_ENV_VAR",
    "JSCSource",
    "find_jsc_file",
    "read_jsc_file",
    "preprocess_jsc",
    "jsc_cache_paths",
    "load_jsc_arrays",
]

JSC_FEATURES: tuple[str, ...] = (
    "j_zlogz",
    "j_c1_b0_mmdt",
    "j_c1_b1_mmdt",
    "j_c1_b2_mmdt",
    "j_c2_b1_mmdt",
    "j_c2_b2_mmdt",
    "j_d2_b1_mmdt",
    "j_d2_b2_mmdt",
    "j_d2_a1_b1_mmdt",
    "j_d2_a1_b2_mmdt",
    "j_m2_b1_mmdt",
    "j_m2_b2_mmdt",
    "j_n2_b1_mmdt",
    "j_n2_b2_mmdt",
    "j_mass_mmdt",
    "j_multiplicity",
)
JSC_LABELS: tuple[str, ...] = ("j_g", "j_q", "j_w", "j_z", "j_t")
JSC_CLASS_NAMES: tuple[str, ...] = ("g", "q", "w", "z", "t")

#: File names looked for in a folder (BITSCOUT_DATA, or MASE's cache folder).
JSC_FILE_NAMES: tuple[str, ...] = (
    "processed-pythia82-lhc13-all-pt1-50k-r1_h022_e0175_t220_nonu_truth.z",
    "hls4ml_lhc_jets_hlf.parquet",
    "hls4ml_lhc_jets_hlf.csv",
    "hls4ml_lhc_jets_hlf.csv.gz",
)
JSC_ENV_VAR = "BITSCOUT_DATA"
_H5_TABLE = "t_allpar_new"
_CLASS_COLUMN = "class"
_CACHE_SUFFIX = ".bitscout-cache.npz"
_CACHE_VERSION = 2  # bump when the preprocessing changes, to invalidate old caches
_MASE_DIR = Path(".machop_cache") / "dataset" / "jsc"

_HOW_TO_GET = (
    "How to get the data (it cannot be downloaded by bitscout):\n"
    "  * OpenML dataset 'hls4ml_lhc_jets_hlf' (id 42468, https://www.openml.org/d/42468): e.g.\n"
    "      sklearn.datasets.fetch_openml(data_id=42468, as_frame=True).frame.to_parquet("
    "'hls4ml_lhc_jets_hlf.parquet')\n"
    "  * or the original HDF5 file of the hls4ml / LogicNets JSC distribution,\n"
    f"      {JSC_FILE_NAMES[0]}\n"
    "Then point bitscout at it: dataset_path = \"/path/to/file\" in the TOML config, or\n"
    f"  export {JSC_ENV_VAR}=/path/to/file (or a folder holding one of: {', '.join(JSC_FILE_NAMES)}),\n"
    f"  or put it in {_MASE_DIR}/ (where MASE keeps it) under the current folder or your home folder."
)


def _candidates_in(folder: Path) -> list[Path]:
    return [folder / name for name in JSC_FILE_NAMES]


def find_jsc_file(path: Path | None = None) -> Path:
    """Find the JSC data file.

    Order: ``path`` (a file, or a folder holding one of :data:`JSC_FILE_NAMES`), then the
    ``BITSCOUT_DATA`` environment variable (same), then MASE's
    ``.machop_cache/dataset/jsc/`` under the current folder and under the home folder.
    Relative paths resolve against the current folder.

    Raises:
        DataError: Nothing found; the message lists every place looked at and how to
            obtain the data.
    """
    looked: list[str] = []

    def search(where: Path, origin: str) -> Path | None:
        if where.is_file():
            return where
        if where.is_dir():
            for candidate in _candidates_in(where):
                if candidate.is_file():
                    return candidate
            looked.append(f"{where}/ ({origin}): none of the known file names inside")
        else:
            looked.append(f"{where} ({origin}): does not exist")
        return None

    if path is not None:
        found = search(Path(path).expanduser(), "dataset_path")
        if found is not None:
            return found
        # An explicit path that does not exist is a mistake: do not silently use another file.
        raise DataError(
            "the JSC data file given as dataset_path was not found:\n  "
            + "\n  ".join(looked)
            + "\n"
            + _HOW_TO_GET
        )
    env = os.environ.get(JSC_ENV_VAR)
    if env:
        found = search(Path(env).expanduser(), f"${JSC_ENV_VAR}")
        if found is not None:
            return found
    else:
        looked.append(f"${JSC_ENV_VAR}: not set")
    for base, origin in ((Path.cwd(), "MASE's cache under the current folder"),
                         (Path.home(), "MASE's cache under the home folder")):
        folder = base / _MASE_DIR
        for candidate in _candidates_in(folder):
            if candidate.is_file():
                return candidate
        looked.append(f"{folder}/ ({origin}): no {' / '.join(JSC_FILE_NAMES)}")
    raise DataError(
        "cannot find the JSC (jet substructure) data. Looked at:\n  "
        + "\n  ".join(looked)
        + "\n"
        + _HOW_TO_GET
    )


def _sniff(path: Path) -> str:
    """'hdf5', 'parquet', 'csv.gz' or 'csv', from the first bytes of the file."""
    with open(path, "rb") as f:
        head = f.read(8)
        if head == b"\x89HDF\r\n\x1a\n":
            return "hdf5"
        # HDF5 files may start with a user block of 512, 1024, 2048, ... bytes.
        offset = 512
        size = path.stat().st_size
        while offset + 8 <= size and offset <= 1 << 20:
            f.seek(offset)
            if f.read(8) == b"\x89HDF\r\n\x1a\n":
                return "hdf5"
            offset *= 2
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:2] == b"\x1f\x8b":
        return "csv.gz"
    return "csv"


def _labels_from_class_column(values: pd.Series, path: Path) -> np.ndarray:
    text = values.astype(str).str.strip().str.lower().str.removeprefix("j_")
    index = {name: i for i, name in enumerate(JSC_CLASS_NAMES)}
    index.update({str(i): i for i in range(len(JSC_CLASS_NAMES))})
    labels = text.map(index)
    if labels.isna().any():
        bad = sorted(set(values[labels.isna()].astype(str)))[:5]
        raise DataError(
            f"{path}: column '{_CLASS_COLUMN}' must hold the jet classes "
            f"{', '.join(JSC_CLASS_NAMES)} (or their indices 0-4 in that order); "
            f"found {', '.join(map(repr, bad))}"
        )
    return labels.to_numpy(dtype=np.int64)


def _require_columns(available: Sequence[str], needed: Sequence[str], path: Path, what: str) -> None:
    missing = [c for c in needed if c not in available]
    if missing:
        raise DataError(
            f"{path}: {what} lacks the JSC column(s) {', '.join(missing)}; "
            f"it has: {', '.join(available)}"
        )


def _row_name(kind: str, row: int) -> str:
    # A CSV's first line is its header, so data row i (from 0) is line i + 2.
    return f"row {row} (line {row + 2})" if kind.startswith("csv") else f"row {row}"


def _numeric_features(frame: pd.DataFrame, path: Path, kind: str) -> np.ndarray:
    """The 16 feature columns as float64, refusing text, NaN and infinities.

    Raises:
        DataError: Names the file, the first bad row and column, and the value.
    """
    import pandas as pd

    columns = {}
    first_text: tuple[int, str, object] | None = None
    for name in JSC_FEATURES:
        column = frame[name]
        numbers = pd.to_numeric(column, errors="coerce")
        text = numbers.isna() & column.notna()
        if text.any():
            row = int(np.flatnonzero(text.to_numpy())[0])
            if first_text is None or row < first_text[0]:
                first_text = (row, name, column.iloc[row])
        columns[name] = numbers.to_numpy(dtype=np.float64)
    if first_text is not None:
        row, name, value = first_text
        raise DataError(
            f"{path}: {_row_name(kind, row)}, column '{name}': {value!r} is not a number; "
            "every JSC feature column must hold numbers only"
        )
    x = np.stack([columns[name] for name in JSC_FEATURES], axis=1)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{path}: {_row_name(kind, row)}, column '{JSC_FEATURES[col]}': {float(x[row, col])!r}; "
            f"{int(bad.any(axis=1).sum())} row(s) hold NaN or infinite features: drop or fix "
            "them (every metric would be NaN)"
        )
    return x


def read_jsc_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read features and labels, duplicates dropped as MASE does.

    Returns:
        ``(x, y)``: features ``(n, 16)`` in :data:`JSC_FEATURES` order, in the file's
        dtype; labels ``(n,)`` as indices into :data:`JSC_CLASS_NAMES`. Rows that repeat
        an earlier row (all 16 features and the label equal) are dropped, keeping the
        first.

    Raises:
        DataError: The file cannot be read, lacks columns, or holds a feature that is
            not a finite number (the message names the first such row and column).
    """
    import pandas as pd  # imported here: a second of start-up, needed only on a cache miss

    path = Path(path)
    try:
        kind = _sniff(path)
    except OSError as exc:
        raise DataError(
            f"cannot read JSC data file {path}: {exc.strerror or exc}; check that it is a "
            "readable file (permissions, a folder, a broken link)"
        ) from None
    try:
        if kind == "hdf5":
            import h5py

            with h5py.File(path, "r") as h5:
                if _H5_TABLE not in h5:
                    raise DataError(
                        f"{path}: HDF5 file without the dataset '{_H5_TABLE}'; it has: "
                        f"{', '.join(h5.keys()) or 'nothing'}"
                    )
                table = h5[_H5_TABLE][()]
            names = table.dtype.names or ()
            _require_columns(names, JSC_FEATURES + JSC_LABELS, path, f"HDF5 dataset '{_H5_TABLE}'")
            frame = pd.DataFrame({name: table[name] for name in JSC_FEATURES + JSC_LABELS})
            _numeric_features(frame, path, kind)
            frame = frame.drop_duplicates()
            x = frame[list(JSC_FEATURES)].to_numpy()
            # One-hot labels to indices (the first maximum, as torch.max in MASE).
            y = frame[list(JSC_LABELS)].to_numpy().argmax(axis=1).astype(np.int64)
            return x, y
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, compression="gzip" if kind == "csv.gz" else None)
    except DataError:
        raise
    except Exception as exc:  # h5py / pyarrow / pandas raise many kinds
        raise DataError(f"cannot read JSC data file {path} (read as {kind}): {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    _require_columns(list(frame.columns), JSC_FEATURES + (_CLASS_COLUMN,), path, f"{kind} table")
    frame = frame.reset_index(drop=True)
    features = pd.DataFrame(_numeric_features(frame, path, kind), columns=list(JSC_FEATURES))
    features[_CLASS_COLUMN] = frame[_CLASS_COLUMN]
    frame = features.drop_duplicates()
    y = _labels_from_class_column(frame[_CLASS_COLUMN], path)
    x = frame[list(JSC_FEATURES)].to_numpy()
    return x, y


def preprocess_jsc(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """MASE's split and scaling: 80/20 with ``random_state=42``, StandardScaler on the 80%.

    Returns:
        ``{"x_train", "y_train", "x_test", "y_test"}``, features as float32.
    """
    if len(y) < 5:
        raise DataError(f"the JSC data has only {len(y)} distinct rows; it needs at least 5")
    from sklearn.model_selection import train_test_split  # imported here: seconds of start-up
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=42)
    scaler = StandardScaler().fit(x_train)
    return {
        "x_train": scaler.transform(x_train).astype(np.float32),
        "y_train": y_train.astype(np.int64),
        "x_test": scaler.transform(x_test).astype(np.float32),
        "y_test": y_test.astype(np.int64),
    }


def jsc_cache_paths(source: Path) -> tuple[Path, Path]:
    """Where the cache of ``source`` lives: next to it, and the fallback in the home folder."""
    source = Path(source).resolve()
    beside = source.with_name(source.name + _CACHE_SUFFIX)
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:16]
    home = Path.home() / ".cache" / "bitscout" / "jsc" / f"{source.name}.{digest}{_CACHE_SUFFIX[1:]}"
    return beside, home


def _stamp(source: Path) -> np.ndarray:
    st = source.stat()
    return np.array([_CACHE_VERSION, st.st_size, st.st_mtime_ns], dtype=np.int64)


def _read_cache(cache: Path, stamp: np.ndarray) -> dict[str, np.ndarray] | None:
    try:
        with np.load(cache, allow_pickle=False) as data:
            if not np.array_equal(data["stamp"], stamp):
                return None
            return {k: data[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except (OSError, KeyError, ValueError):
        return None


def _write_cache(cache: Path, arrays: dict[str, np.ndarray], stamp: np.ndarray) -> bool:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, stamp=stamp, **arrays)
        return True
    except OSError:
        return False


def load_jsc_arrays(source: Path) -> tuple[dict[str, np.ndarray], Path | None]:
    """Preprocessed arrays of ``source``, from the cache when it is current.

    Returns:
        The arrays and the cache file they are now in (``None`` if no cache could be
        written anywhere).
    """
    stamp = _stamp(source)
    beside, home = jsc_cache_paths(source)
    for cache in (beside, home):
        if cache.is_file():
            arrays = _read_cache(cache, stamp)
            if arrays is not None:
                return arrays, cache
    arrays = preprocess_jsc(*read_jsc_file(source))
    for cache in (beside, home):
        if _write_cache(cache, arrays, stamp):
            return arrays, cache
    return arrays, None


class JSCSource(DatasetSource):
    """Jet substructure classification: 16 features, 5 jet classes (g, q, w, z, t).

    The validation split is the training split, as in MASE; the test split is the held-out
    20%. The split is MASE's fixed one (``random_state=42``) whatever the seed.
    """

    name: ClassVar[str] = "jsc"
    description: ClassVar[str] = "jet substructure classification (16 features, 5 classes), from a file"

    def load(self, *, path: Path | None, seed: int) -> Dataset:
        source = find_jsc_file(path)
        arrays, _ = load_jsc_arrays(source)
        train = to_split(arrays["x_train"], arrays["y_train"])
        info = DatasetInfo(
            name=self.name,
            input_shape=(len(JSC_FEATURES),),
            num_classes=len(JSC_CLASS_NAMES),
            class_names=JSC_CLASS_NAMES,
            source=str(source),
        )
        return Dataset(
            info=info,
            train=train,
            val=train,
            test=to_split(arrays["x_test"], arrays["y_test"]),
        )


register_dataset(JSCSource())
