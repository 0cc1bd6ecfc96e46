"""The JSC loader on small files written here, in the HDF5 and OpenML CSV/Parquet forms."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import train_test_split

import bitscout.data._jsc as jsc
from bitscout.data import load_dataset
from bitscout.data._jsc import JSC_FEATURES, JSC_FILE_NAMES, JSC_LABELS, jsc_cache_paths
from bitscout.errors import DataError

H5_NAME = JSC_FILE_NAMES[0]  # processed-pythia82-...truth.z: HDF5 despite the suffix
N_UNIQUE = 200


@pytest.fixture
def raw() -> tuple[np.ndarray, np.ndarray]:
    """200 distinct jets (float32 features, labels 0..4) in file order."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(N_UNIQUE, 16)).astype(np.float32) * np.arange(1, 17, dtype=np.float32)
    y = rng.integers(0, 5, size=N_UNIQUE)
    return x, y


def _with_duplicates(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Append exact copies of rows 3, 10, 10 (dropped by the loader) and row 5's features
    with another label (kept: it is not a duplicate row)."""
    other = (y[5] + 1) % 5
    return np.r_[x, x[[3, 10, 10]], x[[5]]], np.r_[y, y[[3, 10, 10]], [other]]


def _expected(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """MASE's preprocessing, computed here with numpy: dedup, 80/20 split (seed 42),
    standardization with the 80% part's mean and population std."""
    xd, yd = _with_duplicates(x, y)
    keep = list(range(N_UNIQUE)) + [len(yd) - 1]
    xd, yd = xd[keep].astype(np.float64), yd[keep]
    x_tr, x_te, y_tr, y_te = train_test_split(xd, yd, test_size=0.2, random_state=42)
    mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
    return {"x_train": (x_tr - mean) / std, "y_train": y_tr, "x_test": (x_te - mean) / std, "y_test": y_te}


def write_h5(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    xd, yd = _with_duplicates(x, y)
    fields = [("j_index", "<i8"), *((f, "<f4") for f in JSC_FEATURES), ("j_pt", "<f4"),
              *((label, "<i4") for label in JSC_LABELS)]
    table = np.zeros(len(yd), dtype=fields)
    table["j_index"] = 0  # the same for every row: it must not stop duplicates being dropped
    for i, f in enumerate(JSC_FEATURES):
        table[f] = xd[:, i]
    for k, label in enumerate(JSC_LABELS):
        table[label] = (yd == k).astype(np.int32)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("t_allpar_new", data=table)
    return path


def _frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    xd, yd = _with_duplicates(x, y)
    frame = pd.DataFrame(xd, columns=list(JSC_FEATURES))
    frame = frame[list(reversed(JSC_FEATURES))]  # column order must not matter
    frame["class"] = np.array(["g", "q", "w", "z", "t"])[yd]
    return frame


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    _frame(x, y).to_csv(path, index=False)
    return path


def write_csv_gz(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    _frame(x, y).to_csv(path, index=False, compression="gzip")
    return path


def write_parquet(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    _frame(x, y).to_parquet(path, index=False)
    return path


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No BITSCOUT_DATA, and the current and home folders are empty temporary ones."""
    monkeypatch.delenv("BITSCOUT_DATA", raising=False)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    ("writer", "name"),
    [(write_h5, H5_NAME), (write_csv, "jets.csv"), (write_csv_gz, "jets.txt"),
     (write_parquet, "jets.dat")],
    ids=["hdf5", "csv", "gzip-csv-with-other-suffix", "parquet-without-suffix"],
)
def test_formats_give_mase_preprocessing(tmp_path: Path, raw, writer, name) -> None:
    path = writer(tmp_path / name, *raw)
    ds = load_dataset("jsc", path=path)
    want = _expected(*raw)
    assert ds.info.input_shape == (16,) and ds.info.num_classes == 5
    assert ds.info.class_names == ("g", "q", "w", "z", "t")
    assert ds.info.synthetic is False and ds.info.source == str(path)
    # 201 distinct rows: 160 train, 41 test (sklearn rounds the test part up).
    assert (len(ds.train), len(ds.test)) == (160, 41)
    np.testing.assert_allclose(ds.train.x.numpy(), want["x_train"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.test.x.numpy(), want["x_test"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(ds.train.y.numpy(), want["y_train"])
    np.testing.assert_array_equal(ds.test.y.numpy(), want["y_test"])
    # As in MASE (and LogicNets), the validation split is the training split.
    assert torch.equal(ds.val.x, ds.train.x) and torch.equal(ds.val.y, ds.train.y)
    assert ds.train.x.dtype == torch.float32 and ds.train.y.dtype == torch.int64


def test_split_does_not_depend_on_bitscout_seed(tmp_path: Path, raw) -> None:
    path = write_h5(tmp_path / H5_NAME, *raw)
    a = load_dataset("jsc", path=path, seed=0)
    b = load_dataset("jsc", path=path, seed=5)
    assert torch.equal(a.test.x, b.test.x)


def test_cache_is_written_reused_and_invalidated(tmp_path: Path, raw, monkeypatch) -> None:
    path = write_h5(tmp_path / H5_NAME, *raw)
    beside, _ = jsc_cache_paths(path)
    first = load_dataset("jsc", path=path)
    assert beside == tmp_path / f"{H5_NAME}.bitscout-cache.npz" and beside.is_file()

    def must_not_read(_path):
        raise AssertionError("the source was read although the cache is current")

    monkeypatch.setattr(jsc, "read_jsc_file", must_not_read)
    second = load_dataset("jsc", path=path)
    assert torch.equal(first.train.x, second.train.x) and torch.equal(first.test.y, second.test.y)

    # Change the source (new content, size and mtime): the cache must be rebuilt.
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    x, y = raw
    write_h5(path, x[:150], y[:150])
    os.utime(path, ns=(1, 1_000_000_000))
    third = load_dataset("jsc", path=path)
    assert len(third.train) + len(third.test) == 151


def test_cache_falls_back_to_home_when_folder_unwritable(tmp_path: Path, raw) -> None:
    path = write_h5(tmp_path / H5_NAME, *raw)
    beside, home = jsc_cache_paths(path)
    # A folder where the cache file would go makes that place unwritable even for root
    # (chmod does not stop root).
    beside.mkdir()
    first = load_dataset("jsc", path=path)
    assert home.is_file() and str(home).startswith(str(tmp_path / "home" / ".cache" / "bitscout"))
    second = load_dataset("jsc", path=path)
    assert torch.equal(first.train.x, second.train.x)


def test_env_var_file_or_folder(tmp_path: Path, raw, monkeypatch) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    path = write_parquet(folder / "hls4ml_lhc_jets_hlf.parquet", *raw)
    monkeypatch.setenv("BITSCOUT_DATA", str(folder))
    assert load_dataset("jsc").info.source == str(path)
    monkeypatch.setenv("BITSCOUT_DATA", str(path))
    assert load_dataset("jsc").info.source == str(path)


def test_dataset_path_wins_over_env_and_mase_cache(tmp_path: Path, raw, monkeypatch) -> None:
    env_file = write_csv(tmp_path / "env.csv", *raw)
    monkeypatch.setenv("BITSCOUT_DATA", str(env_file))
    explicit = write_csv(tmp_path / "explicit.csv", *raw)
    assert load_dataset("jsc", path=explicit).info.source == str(explicit)


@pytest.mark.parametrize("where", ["cwd", "home"])
def test_mase_cache_folder_is_searched(tmp_path: Path, raw, where) -> None:
    folder = tmp_path / where / ".machop_cache" / "dataset" / "jsc"
    folder.mkdir(parents=True)
    path = write_h5(folder / H5_NAME, *raw)
    assert Path(load_dataset("jsc").info.source).resolve() == path.resolve()


def test_missing_file_lists_places_and_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset("jsc")
    msg = str(err.value)
    assert "$BITSCOUT_DATA: not set" in msg
    assert str(tmp_path / "cwd" / ".machop_cache" / "dataset" / "jsc") in msg
    assert str(tmp_path / "home" / ".machop_cache" / "dataset" / "jsc") in msg
    assert "hls4ml_lhc_jets_hlf" in msg and "42468" in msg and H5_NAME in msg
    assert "dataset_path" in msg and "export BITSCOUT_DATA=" in msg


def test_missing_explicit_path_is_an_error(tmp_path: Path, raw, monkeypatch) -> None:
    monkeypatch.setenv("BITSCOUT_DATA", str(write_csv(tmp_path / "env.csv", *raw)))
    with pytest.raises(DataError, match=r"nope\.h5 \(dataset_path\): does not exist"):
        load_dataset("jsc", path=tmp_path / "nope.h5")


def test_table_without_a_feature_names_it(tmp_path: Path, raw) -> None:
    frame = _frame(*raw).drop(columns=["j_mass_mmdt"])
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="lacks the JSC column\\(s\\) j_mass_mmdt"):
        load_dataset("jsc", path=tmp_path / "bad.csv")


def test_unknown_class_label_is_named(tmp_path: Path, raw) -> None:
    frame = _frame(*raw)
    frame.loc[0, "class"] = "higgs"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="'higgs'"):
        load_dataset("jsc", path=tmp_path / "bad.csv")


def test_hdf5_without_table_is_named(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "x.h5", "w") as h5:
        h5.create_dataset("other", data=np.zeros(3))
    with pytest.raises(DataError, match="without the dataset 't_allpar_new'; it has: other"):
        load_dataset("jsc", path=tmp_path / "x.h5")


@pytest.mark.parametrize(
    ("value", "shown"), [(np.inf, "inf"), (-np.inf, "-inf"), (np.nan, "nan")]
)
def test_a_non_finite_feature_names_the_file_row_line_and_column(tmp_path: Path, raw, value, shown) -> None:
    frame = _frame(*raw)
    frame.loc[42, "j_mass_mmdt"] = value
    frame.loc[57, "j_zlogz"] = value  # a later row: the first one is named
    path = tmp_path / "jets.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as caught:
        load_dataset("jsc", path=path)
    assert str(caught.value) == (
        f"{path}: row 42 (line 44), column 'j_mass_mmdt': {shown}; 2 row(s) hold NaN or "
        "infinite features: drop or fix them (every metric would be NaN)"
    )


def test_text_in_a_feature_column_names_the_file_row_and_value(tmp_path: Path, raw) -> None:
    frame = _frame(*raw).astype(object)
    frame.loc[7, "j_c1_b0_mmdt"] = "hello"
    path = tmp_path / "jets.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError) as caught:
        load_dataset("jsc", path=path)
    assert str(caught.value) == (
        f"{path}: row 7 (line 9), column 'j_c1_b0_mmdt': 'hello' is not a number; "
        "every JSC feature column must hold numbers only"
    )


def test_nan_in_a_parquet_file_names_the_row(tmp_path: Path, raw) -> None:
    frame = _frame(*raw)
    frame.loc[3, "j_multiplicity"] = np.nan
    path = tmp_path / "jets.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"jets.parquet: row 3, column 'j_multiplicity': nan;"):
        load_dataset("jsc", path=path)


def test_an_unreadable_data_file_is_a_data_error(tmp_path: Path, raw, monkeypatch) -> None:
    path = write_csv(tmp_path / "jets.csv", *raw)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    # Root reads any file whatever its mode, so the refusal is simulated where it happens.
    monkeypatch.setattr(jsc, "open", refuse, raising=False)
    with pytest.raises(DataError) as caught:
        load_dataset("jsc", path=path)
    assert str(caught.value) == (
        f"cannot read JSC data file {path}: Permission denied; check that it is a readable "
        "file (permissions, a folder, a broken link)"
    )
