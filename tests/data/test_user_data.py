"""Your own data: as_dataset over arrays, tensors, torch Datasets and DataLoaders; data
files (.npz, .pt, .csv, .parquet) and factories named in a config."""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from bitscout.data import as_dataset, dataset_kind, dataset_problem, load_dataset
from bitscout.errors import DataError


def _xy(n: int = 100, classes: int = 4, shape: tuple[int, ...] = (5,)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    # Sample i holds the value i in every feature: splits can be traced back to rows.
    x = np.broadcast_to(np.arange(n, dtype=np.float64).reshape(n, *[1] * len(shape)), (n, *shape)).copy()
    y = rng.permutation(np.arange(n) % classes)
    return x, y


def _rows(split: torch.Tensor) -> list[int]:
    return sorted(int(v) for v in split.reshape(len(split), -1)[:, 0])


def test_kind_of_a_spec() -> None:
    assert dataset_kind("digits") == "registry"
    assert dataset_kind("data.npz") == "file"
    assert dataset_kind("runs/x/data.csv") == "file"
    assert dataset_kind("data.h5") == "file"  # unknown suffix: a file, refused with a reason
    assert dataset_kind("mypkg.data:make") == "factory"


def test_single_xy_is_split_60_30_10_stratified_and_seeded() -> None:
    x, y = _xy(100, classes=4)
    data = as_dataset((x, y), seed=0, name="mine")
    assert (len(data.train), len(data.val), len(data.test)) == (60, 30, 10)
    # Every sample lands in exactly one split, with its own label.
    rows = _rows(data.train.x) + _rows(data.val.x) + _rows(data.test.x)
    assert sorted(rows) == list(range(100))
    for split in (data.train, data.val, data.test):
        assert torch.equal(split.y, torch.from_numpy(y[_rows(split.x)]))
    # Stratified: 30 validation samples over 4 classes of 25 -> 7 or 8 of each.
    assert set(torch.bincount(data.val.y).tolist()) <= {7, 8}
    assert data.info.input_shape == (5,) and data.info.num_classes == 4
    assert "split stratified with seed 0: 60 train / 30 val / 10 test" in data.info.source
    again = as_dataset((x, y), seed=0)
    other = as_dataset((x, y), seed=1)
    assert _rows(again.val.x) == _rows(data.val.x)
    assert _rows(other.val.x) != _rows(data.val.x)


def test_tensors_torch_dataset_and_dataloader_give_the_same_data() -> None:
    x, y = _xy(40, classes=2, shape=(1, 3, 3))
    tx, ty = torch.from_numpy(x).float(), torch.from_numpy(y)
    by_tensors = as_dataset({"train": (tx, ty), "val": (tx[:10], ty[:10])})
    by_dataset = as_dataset({"train": TensorDataset(tx, ty), "val": TensorDataset(tx[:10], ty[:10])})
    by_loader = as_dataset({"train": DataLoader(TensorDataset(tx, ty), batch_size=7), "val": (tx[:10], ty[:10])})
    for data in (by_tensors, by_dataset, by_loader):
        assert data.info.input_shape == (1, 3, 3)
        assert torch.equal(data.train.x, tx) and torch.equal(data.train.y, ty)
        assert torch.equal(data.val.x, tx[:10])
        assert len(data.test) == 0 and data.test.x.shape == (0, 1, 3, 3)


def test_single_as_val_keeps_every_sample_for_evaluation() -> None:
    x, y = _xy(12, classes=3)
    data = as_dataset((x, y), single="val")
    assert len(data.val) == 12 and len(data.train) == 0 and len(data.test) == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((np.zeros((4, 2)), np.array([0, 1, 0.5, 1])), "labels must be integer class indices"),
        ((np.zeros((4, 2)), np.array([0, 1, -1, 1])), "labels must be class indices >= 0"),
        ((np.zeros((4, 2)), np.eye(4)), r"one class index per sample.*argmax"),
        ((np.zeros(4), np.array([0, 1, 0, 1])), r"shape \(samples, features...\)"),
        ((np.zeros((4, 2)), np.array([0, 1, 0])), "4 samples but 3 labels"),
        ({"train": (np.zeros((4, 2)), np.array([0, 1, 0, 1]))}, "has no validation split"),
        ({"x_train": np.zeros((4, 2))}, "has 'x_train' but no 'y_train'"),
        ({"x": np.zeros((4, 2)), "y": np.zeros(4), "z": 1}, r"unknown key\(s\) \['z'\]"),
        ({"training": (np.zeros((4, 2)), np.zeros(4))}, "unknown split 'training'"),
        (object(), "cannot read a object as samples and labels"),
    ],
)
def test_bad_data_is_one_data_error(data: object, message: str) -> None:
    with pytest.raises(DataError, match=message):
        as_dataset(data, name="mine")


def test_npz_single_and_per_split(tmp_path: Path) -> None:
    x, y = _xy(50, classes=5)
    np.savez(tmp_path / "one.npz", x=x, y=y)
    data = load_dataset(str(tmp_path / "one.npz"), seed=3)
    assert (len(data.train), len(data.val), len(data.test)) == (30, 15, 5)
    assert data.info.name == str(tmp_path / "one.npz")
    assert data.info.source.startswith(str(tmp_path / "one.npz") + " (one x/y, split")
    np.savez(tmp_path / "splits.npz", x_train=x[:30], y_train=y[:30], x_val=x[30:], y_val=y[30:],
             class_names=np.array(["a", "b", "c", "d", "e"]))
    data = load_dataset(str(tmp_path / "splits.npz"))
    assert torch.equal(data.val.x, torch.from_numpy(x[30:]).float())
    assert len(data.test) == 0
    assert data.info.class_names == ("a", "b", "c", "d", "e")


def test_pt_dict_of_tensors_is_read_weights_only(tmp_path: Path) -> None:
    x, y = _xy(30, classes=3)
    torch.save({"x_train": torch.from_numpy(x), "y_train": torch.from_numpy(y),
                "x_val": torch.from_numpy(x[:9]), "y_val": torch.from_numpy(y[:9])}, tmp_path / "d.pt")
    data = load_dataset(str(tmp_path / "d.pt"))
    assert torch.equal(data.train.y, torch.from_numpy(y)) and len(data.val) == 9
    torch.save({"x": x, "y": y, "why": _Unsafe()}, tmp_path / "bad.pt")
    with pytest.raises(DataError, match=r"bad.pt'.*weights_only=True.*Save a dict of tensors"):
        load_dataset(str(tmp_path / "bad.pt"))


class _Unsafe:
    """An object weights_only loading refuses (a pickle could run code)."""


def test_csv_and_parquet_with_label_column(tmp_path: Path) -> None:
    x, y = _xy(40, classes=2)
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    table.insert(2, "kind", np.where(y == 1, "signal", "noise"))
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        data = load_dataset(str(tmp_path / name), label_column="kind")
        assert data.info.class_names == ("noise", "signal")  # sorted names -> 0, 1
        assert data.info.input_shape == (5,)
        rows = _rows(data.val.x)
        assert torch.equal(data.val.y, torch.from_numpy(y[rows]))
    with pytest.raises(DataError, match=r"t.csv'.*has no column 'knd' \(label_column\).*did you mean 'kind'"):
        load_dataset(str(tmp_path / "t.csv"), label_column="knd")
    with pytest.raises(DataError, match=r"t.csv'.*needs label_column"):
        load_dataset(str(tmp_path / "t.csv"))


def test_a_column_numbering_the_rows_is_read_as_a_feature_with_a_warning(tmp_path: Path) -> None:
    # user9: a CSV with a patient_id column: the ID silently became the first feature.
    x, y = _xy(40, classes=2)
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    table.insert(0, "patient_id", np.arange(1000, 1040)[::-1])
    table["kind"] = y
    table["count"] = np.arange(40) % 7  # whole numbers, repeated: a feature like any other
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning) as caught:
        data = load_dataset(str(tmp_path / "t.csv"), label_column="kind")
    assert [str(w.message) for w in caught] == [
        f"dataset {str(tmp_path / 't.csv')!r}: column 'patient_id' holds each whole number from 1000 to "
        "1039 once, like a row number or an ID, and is read as a feature (every column but label_column "
        "is one); if it is an ID, drop it from the file"
    ]
    assert data.info.input_shape == (7,)  # still read as the docs say: every other column
    table.drop(columns=["patient_id"]).to_csv(tmp_path / "clean.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(str(tmp_path / "clean.csv"), label_column="kind")


def test_a_missing_value_in_a_table_is_named_by_column_and_row(tmp_path: Path) -> None:
    # user9: a Parquet file with one empty cell was reported as "sample 5, feature 3":
    # the column's name and the file's line say where to look.
    x, y = _xy(40, classes=2)
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    table["kind"] = y
    table.loc[5, "f3"] = np.nan
    table.loc[9, "f1"] = np.nan
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError) as caught:
        load_dataset(str(tmp_path / "t.csv"), label_column="kind")
    assert str(caught.value) == (
        f"dataset {str(tmp_path / 't.csv')!r}: 2 missing value(s) in the feature columns, the first in "
        "column 'f3', row 5 (line 7 of the file); fill them or drop those rows: every metric would be NaN"
    )
    assert (tmp_path / "t.csv").read_text().splitlines()[6].split(",")[3] == ""  # line 7, column f3
    with pytest.raises(DataError, match=r"t.parquet': 2 missing value\(s\) .* column 'f3', row 5; fill"):
        load_dataset(str(tmp_path / "t.parquet"), label_column="kind")


def test_integer_labels_counted_from_one_are_warned_about(tmp_path: Path) -> None:
    # user9: labels 1 and 2 made 3 classes (class 0 empty), and the 2-output model was
    # refused for its class count without a word about why there were 3.
    x, y = _xy(40, classes=2)
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    table["kind"] = y + 1
    table.to_csv(tmp_path / "t.csv", index=False)
    with pytest.warns(UserWarning) as caught:
        data = load_dataset(str(tmp_path / "t.csv"), label_column="kind")
    assert data.info.num_classes == 3  # still read as the docs say: labels are class indices
    assert [str(w.message) for w in caught] == [
        f"dataset {str(tmp_path / 't.csv')!r}: column 'kind' holds the labels 1, 2, read as class "
        "indices: the data has 3 classes, and class(es) 0 have no sample. If the labels count from 1, "
        "subtract 1 in the file (or write them as names: names are sorted, then numbered from 0)"
    ]
    table["kind"] = y
    table.to_csv(tmp_path / "t.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_dataset(str(tmp_path / "t.csv"), label_column="kind").info.num_classes == 2


def test_npz_text_labels_are_read_as_the_csv_reads_them(tmp_path: Path) -> None:
    # user8: np.savez(y=np.array(["cat", ...])) was refused while a CSV of names worked.
    x, y = _xy(60, classes=3)
    names = np.array(["dog", "cat", "emu"])[y]  # class 0 is "dog": sorted order renumbers
    np.savez(tmp_path / "text.npz", x=x, y=names)
    table = pd.DataFrame(x, columns=[f"f{i}" for i in range(5)])
    table["animal"] = names
    table.to_csv(tmp_path / "text.csv", index=False)
    from_npz = load_dataset(str(tmp_path / "text.npz"), seed=2)
    from_csv = load_dataset(str(tmp_path / "text.csv"), seed=2, label_column="animal")
    assert from_npz.info.class_names == from_csv.info.class_names == ("cat", "dog", "emu")
    sorted_index = {"cat": 0, "dog": 1, "emu": 2}
    for split in ("train", "val", "test"):
        got, csv = from_npz.split(split), from_csv.split(split)
        rows = _rows(got.x)
        assert rows == _rows(csv.x)
        assert got.y.tolist() == [sorted_index[str(n)] for n in names[rows]] == csv.y.tolist()


def test_per_split_text_labels_share_one_numbering(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    # "b" only in train, "c" only in val: each split numbered alone would disagree.
    np.savez(tmp_path / "s.npz", x_train=x[:3], y_train=np.array(["a", "b", "a"]),
             x_val=x[3:], y_val=np.array([b"c", b"a", b"c"]))
    data = load_dataset(str(tmp_path / "s.npz"))
    assert data.info.class_names == ("a", "b", "c")
    assert data.train.y.tolist() == [0, 1, 0] and data.val.y.tolist() == [2, 0, 2]
    np.savez(tmp_path / "named.npz", x=np.zeros((9, 2)), y=np.array(["lo", "hi", "mid"] * 3),
             class_names=np.array(["lo", "mid", "hi"]))
    named = load_dataset(str(tmp_path / "named.npz"))
    assert named.info.class_names == ("lo", "mid", "hi")  # the file's order, not sorted
    assert sorted(named.train.y.tolist() + named.val.y.tolist() + named.test.y.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    tensors = as_dataset({"train": (x[:3], ["a", "b", "a"]), "val": {"x": x[3:], "y": ["b", "a", "b"]}})
    assert tensors.train.y.tolist() == [0, 1, 0] and tensors.val.y.tolist() == [1, 0, 1]


def test_text_labels_that_cannot_be_numbered_are_one_data_error(tmp_path: Path) -> None:
    x = np.zeros((6, 2))
    np.savez(tmp_path / "mixed.npz", x_train=x[:3], y_train=np.array(["a", "b", "a"]), x_val=x[3:], y_val=np.array([0, 1, 0]))
    with pytest.raises(DataError, match=r"mixed.npz'.*some label arrays hold text and some numbers"):
        load_dataset(str(tmp_path / "mixed.npz"))
    np.savez(tmp_path / "typo.npz", x=np.zeros((6, 2)), y=np.array(["lo", "hi", "hgh"] * 2), class_names=np.array(["lo", "hi"]))
    with pytest.raises(DataError, match=r"typo.npz'.*label\(s\) 'hgh' are not in class_names \('lo', 'hi'\)"):
        load_dataset(str(tmp_path / "typo.npz"))
    np.savez(tmp_path / "objects.npz", x=np.zeros((6, 2)), y=np.array(["lo", "hi", "lo"] * 2, dtype=object))
    with pytest.raises(DataError, match=r"objects.npz'.*dtype=object.*text labels as strings \(np.asarray\(y, dtype=str\)\)"):
        load_dataset(str(tmp_path / "objects.npz"))


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"junk.npz'.*not a readable .npz file"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(DataError, match=r"missing.npz'.*file not found"):
        load_dataset(str(tmp_path / "missing.npz"))
    (tmp_path / "d.h5").write_bytes(b"")
    with pytest.raises(DataError, match=r"unknown kind of data file '.h5'"):
        load_dataset(str(tmp_path / "d.h5"))
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(DataError, match=r"obj.npz'.*Python objects"):
        load_dataset(str(tmp_path / "obj.npz"))
    assert dataset_problem(str(tmp_path / "missing.npz")) is not None
    assert "label_column is only for CSV" in str(dataset_problem("digits", label_column="y"))


@pytest.fixture
def data_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = "bitscout_test_user_data"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        import numpy as np
        import torch
        from torch.utils.data import DataLoader, TensorDataset

        def _xy(n, seed=0):
            g = torch.Generator().manual_seed(seed)
            return torch.randn(n, 3, generator=g), torch.arange(n) % 3

        def loaders():
            x, y = _xy(30)
            return {"train": DataLoader(TensorDataset(x, y), batch_size=8),
                    "val": DataLoader(TensorDataset(x[:12], y[:12]), batch_size=5)}

        def seeded(seed):
            return _xy(30, seed)

        def kwargs_only(**kw):
            assert not kw, kw
            return _xy(30)

        def broken():
            raise RuntimeError("the data server is down")

        def wrong():
            return "no data here"
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_factories(data_module: str) -> None:
    data = load_dataset(f"{data_module}:loaders")
    assert (len(data.train), len(data.val), len(data.test)) == (30, 12, 0)
    assert data.info.name == f"{data_module}:loaders"
    # A factory that declares seed gets the config's seed; **kwargs factories get nothing.
    a, b = load_dataset(f"{data_module}:seeded", seed=1), load_dataset(f"{data_module}:seeded", seed=2)
    assert not torch.equal(torch.sort(a.val.x.flatten()).values[:3], torch.sort(b.val.x.flatten()).values[:3])
    assert len(load_dataset(f"{data_module}:kwargs_only").val) == 9
    with pytest.raises(DataError, match=rf"dataset '{data_module}:broken': calling broken\(\) failed: "
                                        "RuntimeError: the data server is down"):
        load_dataset(f"{data_module}:broken")
    with pytest.raises(DataError, match=rf"dataset '{data_module}:wrong': cannot read a str"):
        load_dataset(f"{data_module}:wrong")
    with pytest.raises(DataError, match="cannot import module 'no_such_data_pkg'"):
        load_dataset("no_such_data_pkg:make")
    assert dataset_problem(f"{data_module}:nothing") == (
        f"dataset '{data_module}:nothing': module '{data_module}' has no attribute 'nothing'"
    )
    assert dataset_problem(f"{data_module}:loaders") is None


def test_read_only_columns_load_without_a_torch_warning(tmp_path: Path) -> None:
    # pandas hands Parquet's int64 and float32 columns over as read-only views of Arrow
    # buffers; torch.from_numpy of those warned "The given NumPy array is not writable".
    x, y = _xy(40, classes=2)
    table = pd.DataFrame(x.astype(np.float32), columns=[f"f{i}" for i in range(5)])
    table["cls"] = y
    table.to_parquet(tmp_path / "t.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_dataset(str(tmp_path / "t.parquet"), label_column="cls")
        frozen_x, frozen_y = x.astype(np.float32), y.astype(np.int64)
        frozen_x.flags.writeable = frozen_y.flags.writeable = False
        mine = as_dataset((frozen_x, frozen_y), name="frozen", single="val")
    assert torch.equal(data.val.y, torch.from_numpy(y[_rows(data.val.x)]))
    assert torch.equal(mine.val.y, torch.from_numpy(y)) and torch.equal(mine.val.x, torch.from_numpy(x).float())


def test_nan_in_a_data_file_names_the_sample_and_feature(tmp_path: Path) -> None:
    x, y = _xy(40, classes=2)
    x[7, 3] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with pytest.raises(DataError) as caught:
        load_dataset(str(tmp_path / "d.npz"))
    assert str(caught.value).endswith(
        "x: 1 value(s) are NaN or infinite, the first at sample 7, feature 3 (nan); "
        "clean or drop those rows: every metric would be NaN"
    )
