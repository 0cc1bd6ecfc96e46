"""Data that would make every metric NaN, and paths that would be ignored, are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bitscout.data import check_finite, load_dataset
from bitscout.errors import DataError


def test_check_finite_names_the_first_bad_sample_and_feature() -> None:
    x = torch.zeros(5, 3)
    x[3, 1] = float("nan")
    x[4, 0] = float("inf")
    with pytest.raises(DataError) as caught:
        check_finite(x, where="data.npz (train split)")
    assert str(caught.value) == (
        "data.npz (train split): 2 value(s) are NaN or infinite, the first at sample 3, "
        "feature 1 (nan); clean or drop those rows: every metric would be NaN"
    )


def test_check_finite_names_image_positions_and_accepts_finite_data() -> None:
    x = np.zeros((2, 1, 4, 4), dtype=np.float32)
    check_finite(x, where="ok")
    x[1, 0, 2, 3] = -np.inf
    with pytest.raises(DataError, match=r"the first at sample 1, feature \(0, 2, 3\) \(-inf\)"):
        check_finite(x, where="images")


@pytest.mark.parametrize("name", ["digits", "wine", "synthetic"])
def test_dataset_path_on_a_data_set_that_reads_no_file_is_refused(name: str, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    with pytest.raises(DataError) as caught:
        load_dataset(name, path=path)
    message = str(caught.value)
    assert message.startswith(
        f"dataset_path: dataset {name!r} reads no file, so dataset_path = {str(path)!r} would be ignored; "
        "remove dataset_path, or use a data set read from a file ("
    )
    assert "jsc" in message.rsplit("(", 1)[1]
