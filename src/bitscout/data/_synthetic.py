"""A synthetic data set for tests only: Gaussian clusters, one per class.

Its numbers say nothing about real accuracy: :attr:`DatasetInfo.synthetic` is True and
its name says so, so that no report can mistake it for real data.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from bitscout.data._base import Dataset, DatasetInfo, DatasetSource, register_dataset
from bitscout.data._bundled import _split_dataset

__all__ = ["SyntheticSource"]


class SyntheticSource(DatasetSource):
    """Gaussian clusters: 600 samples, 16 features, 4 classes (shaped like a tiny JSC).

    The samples are the same for every seed (generated from a fixed generator); the seed
    only chooses the train/validation/test split, as for the real data sets.
    """

    reads_path: ClassVar[bool] = False
    name: ClassVar[str] = "synthetic"
    description: ClassVar[str] = "SYNTHETIC Gaussian clusters for tests (600 samples, 4 classes)"

    num_samples: ClassVar[int] = 600
    num_features: ClassVar[int] = 16
    num_classes: ClassVar[int] = 4

    def load(self, *, path: Path | None, seed: int) -> Dataset:
        rng = np.random.default_rng(20240501)
        centers = rng.normal(0.0, 1.5, size=(self.num_classes, self.num_features))
        y = np.arange(self.num_samples) % self.num_classes
        x = centers[y] + rng.normal(0.0, 1.0, size=(self.num_samples, self.num_features))
        info = DatasetInfo(
            name=self.name,
            input_shape=(self.num_features,),
            num_classes=self.num_classes,
            class_names=tuple(f"synthetic_{c}" for c in range(self.num_classes)),
            source="synthetic Gaussian clusters (not real data)",
            synthetic=True,
        )
        return _split_dataset(info, x, y, seed=seed)


register_dataset(SyntheticSource())
