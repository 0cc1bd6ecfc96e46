"""The class-major scores: the cross-entropy's definition, its independence of grouping, argmax."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bitscout.training import class_major, cross_entropy_sums, label_positions, score_chunk


def _logits(samples: int, classes: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Logits of widely different magnitudes, so that rounding shows in the last bits."""
    generator = torch.Generator().manual_seed(seed)
    scales = torch.logspace(-3, 2, samples, dtype=torch.float64)[torch.randperm(samples, generator=generator)]
    values = torch.randn(samples, classes, generator=generator, dtype=torch.float64) * scales[:, None]
    return values.to(dtype)


def _sums(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """cross_entropy_sums of one configuration's logits, as the exhaustive engine takes them."""
    by_class = class_major(logits)
    own = by_class.gather(0, labels.view(1, -1))[0]
    return cross_entropy_sums(by_class, by_class.amax(dim=0), own)


def _chunk(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, np.ndarray]:
    """score_chunk as a trial calls it: (loss sum, predicted classes)."""
    loss, rank = score_chunk(logits, label_positions(labels))
    return loss, logits.shape[1] - rank.astype(np.int64)


@pytest.mark.parametrize("threads", [1, 2])
def test_exp_and_log_do_not_depend_on_an_elements_position(threads: int) -> None:
    """What the grouping-free bits rest on: PyTorch's exp and log of an element are the
    same at any offset, in any length of call, in any number of threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        values = -_logits(70_003, 1, seed=threads).abs()[:, 0]
        whole_exp, whole_log = torch.exp(values), torch.log(1 - values)
        for start, length in [(0, 1), (1, 5), (3, 17), (5, 33), (13, 2049), (1, 40_000), (7, 70_000)]:
            part = values[start : start + length].clone()
            assert torch.equal(torch.exp(part), whole_exp[start : start + length]), (start, length)
            assert torch.equal(torch.log(1 - part), whole_log[start : start + length]), (start, length)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("samples", "classes"), [(1, 2), (7, 5), (540, 10), (4097, 3), (20_000, 40)])
def test_a_block_of_configurations_gives_each_ones_own_bits(samples: int, classes: int, dtype: torch.dtype) -> None:
    """The exhaustive engine scores (configs, classes, samples) blocks; a trial scores one
    configuration's (samples, classes) logits: the sums are equal to the bit."""
    configs = 6
    block = torch.stack([_logits(samples, classes, seed) for seed in range(configs)]).to(dtype)
    labels = torch.randint(0, classes, (samples,), generator=torch.Generator().manual_seed(samples))
    by_class = class_major(block.transpose(1, 2).contiguous(), transposed=True)
    # As the exhaustive engine takes them: a maximum and a gather over the block.
    own = by_class.gather(1, labels.view(1, 1, -1).expand(configs, 1, -1)).squeeze(1)
    together = cross_entropy_sums(by_class, by_class.amax(dim=1), own)
    assert together.dtype == np.float64 and together.shape == (configs,)
    alone = np.array([_sums(block[i], labels)[()] for i in range(configs)])
    assert np.array_equal(together, alone)
    # A trial's evaluation: one chunk, its own steps, the same bits.
    assert np.array_equal(together, np.array([_chunk(block[i], labels)[0] for i in range(configs)]))


@pytest.mark.parametrize("classes", [2, 5, 10, 40])
def test_the_loss_is_pytorchs_cross_entropy_but_for_the_last_bits(classes: int) -> None:
    logits = _logits(3000, classes, seed=classes)
    labels = torch.randint(0, classes, (3000,), generator=torch.Generator().manual_seed(1))
    expected = F.cross_entropy(logits.double(), labels, reduction="sum").item()
    assert float(_sums(logits, labels)) == pytest.approx(expected, rel=1e-6)


def test_the_per_sample_definition() -> None:
    """log(sum_k exp(x_k - m)) - (x_label - m), the classes added in order, the samples in float64."""
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, -1.0], [-2.0, 4.0, 0.0]])
    labels = torch.tensor([2, 0, 0])
    expected = 0.0
    for row, label in zip(logits.numpy(), labels.numpy()):
        shifted = row - row.max()
        total = np.float32(0.0)
        for value in shifted:
            total = np.float32(total + np.exp(value))
        expected += float(np.float32(np.log(total) - shifted[label]))
    assert float(_sums(logits, labels)) == pytest.approx(expected, rel=1e-7)


@pytest.mark.parametrize(
    ("special", "expected"), [(float("nan"), math.nan), (float("inf"), math.nan), (float("-inf"), math.inf)]
)
def test_non_finite_logits_give_a_non_finite_loss_without_warnings(special: float, expected: float) -> None:
    """As PyTorch's cross_entropy: NaN for a NaN or +inf logit, inf for a label logit at -inf."""
    logits = torch.tensor([[1.0, 2.0], [0.5, 0.0], [0.0, 1.0]])
    logits[1, 0] = special
    labels = torch.tensor([0, 0, 1])
    reference = F.cross_entropy(logits, labels, reduction="sum").item()
    assert math.isnan(reference) if math.isnan(expected) else reference == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for got in (float(_sums(logits, labels)), _chunk(logits, labels)[0]):
            assert math.isnan(got) if math.isnan(expected) else got == expected


@pytest.mark.parametrize("classes", [3, 5, 300])
def test_predicted_classes_are_argmax_with_ties_and_infinities(classes: int) -> None:
    generator = torch.Generator().manual_seed(classes)
    logits = torch.randint(-2, 3, (2000, classes), generator=generator).float()  # many ties
    logits[::11, 1] = float("inf")
    logits[::13] = float("-inf")
    labels = torch.zeros(2000, dtype=torch.long)
    assert np.array_equal(_chunk(logits, labels)[1], logits.argmax(dim=1).numpy())
    logits[::17, 2] = float("nan")  # argmax takes the first NaN
    assert np.array_equal(_chunk(logits, labels)[1], logits.argmax(dim=1).numpy())


def test_half_precision_logits_are_scored_in_float32() -> None:
    logits = _logits(50, 4, seed=0, dtype=torch.float16)
    assert class_major(logits).dtype == torch.float32
    assert torch.equal(class_major(logits), logits.float().t())
