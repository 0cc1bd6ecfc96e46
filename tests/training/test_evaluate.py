"""evaluate() against an independent numpy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bitscout.errors import DataError
from bitscout.training import evaluate


def _numpy_reference(logits: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Top-1 accuracy, torchmetrics' macro recall, mean cross-entropy.

    The macro recall averages over the classes that occur in y or in the predictions;
    a class predicted but absent from y has recall 0.
    """
    pred = logits.argmax(axis=1)
    accuracy = float(np.mean(pred == y))
    classes = np.union1d(np.unique(y), np.unique(pred))
    recalls = [np.mean(pred[y == c] == c) if np.any(y == c) else 0.0 for c in classes]
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(y)), y].mean())
    return accuracy, float(np.mean(recalls)), loss


@pytest.fixture
def linear_case() -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Linear(6, 4).double()
    x = torch.randn(203, 6, dtype=torch.float64)
    # Unbalanced labels, and class 3 absent: balanced accuracy averages classes 0, 1, 2.
    y = torch.from_numpy(np.random.default_rng(1).choice(3, size=203, p=[0.6, 0.3, 0.1]))
    return model, x, y


@pytest.mark.parametrize("batch_size", [None, 1, 16, 203, 500])
def test_matches_numpy(linear_case, batch_size) -> None:
    model, x, y = linear_case
    w = model.weight.detach().numpy()
    b = model.bias.detach().numpy()
    acc, bal, loss = _numpy_reference(x.numpy() @ w.T + b, y.numpy())
    result = evaluate(model, x, y, batch_size=batch_size)
    assert result.num_samples == 203
    assert result.accuracy == pytest.approx(acc, abs=1e-12)
    assert result.balanced_accuracy == pytest.approx(bal, abs=1e-12)
    assert result.loss == pytest.approx(loss, rel=1e-12)
    assert acc != pytest.approx(bal)  # the data set is unbalanced enough to tell them apart


def test_hand_computed_example() -> None:
    # Logits fixed by hand: predictions [0, 0, 1, 1, 2] for labels [0, 1, 1, 1, 2].
    logits = torch.tensor([[2.0, 0, 0], [1, 0, 0], [0, 3, 0], [0, 1, 0], [0, 0, 5]])
    model = nn.Identity()
    y = torch.tensor([0, 1, 1, 1, 2])
    r = evaluate(model, logits, y)
    assert r.accuracy == pytest.approx(4 / 5)
    assert r.balanced_accuracy == pytest.approx((1 + 2 / 3 + 1) / 3)

    expected_loss = np.mean([
        np.log(np.exp(2) + 2) - 2, np.log(np.e + 2), np.log(np.exp(3) + 2) - 3,
        np.log(np.e + 2) - 1, np.log(np.exp(5) + 2) - 5,
    ])
    assert r.loss == pytest.approx(expected_loss, rel=1e-6)


def test_restores_training_mode_and_leaves_batchnorm_untouched() -> None:
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2))
    model.train()
    before = model[0].running_mean.clone()
    evaluate(model, torch.randn(10, 3) + 5, torch.zeros(10, dtype=torch.long))
    assert model.training
    assert torch.equal(model[0].running_mean, before)


def test_a_training_submodule_of_an_eval_model_is_evaluated_in_eval_mode() -> None:
    # evaluate() skips the mode switch when no module is training; one training child
    # (here a BatchNorm whose parent is in eval mode) must still be switched.
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Linear(3, 2)).eval()
    model[0].train()
    before = model[0].running_mean.clone()
    x = torch.randn(10, 3) + 5
    r = evaluate(model, x, torch.zeros(10, dtype=torch.long))
    assert torch.equal(model[0].running_mean, before)
    with torch.no_grad():
        expected = evaluate(nn.Sequential(model[0], model[1]).eval(), x, torch.zeros(10, dtype=torch.long))
    assert r == expected


def test_bad_inputs() -> None:
    model = nn.Linear(3, 2)
    with pytest.raises(DataError, match="labels must lie in 0..1; got labels from 0 to 2"):
        evaluate(model, torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    with pytest.raises(DataError, match="x has 4 samples but y has 3 labels"):
        evaluate(model, torch.randn(4, 3), torch.tensor([0, 1, 1]))
    with pytest.raises(DataError, match="0 samples"):
        evaluate(model, torch.randn(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(DataError, match="the model gives 2 outputs per sample but the data has 5 classes"):
        evaluate(model, torch.randn(4, 3), torch.tensor([0, 1, 1, 0]), num_classes=5)


def test_class_predicted_but_absent_counts_as_zero_recall() -> None:
    # torchmetrics' macro average: class 2 never occurs in y but is predicted once.
    logits = torch.tensor([[2.0, 0, 0], [0, 1, 0], [0, 0, 3], [0, 2, 0]])
    y = torch.tensor([0, 1, 1, 1])
    r = evaluate(nn.Identity(), logits, y)
    assert r.balanced_accuracy == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_prepared_samples_give_the_same_numbers_for_many_models() -> None:
    """EvalSet + evaluate_set (a search's path) = evaluate, call after call, chunked or not."""
    from bitscout.training import EvalSet, evaluate_set

    torch.manual_seed(0)
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    models = [nn.Linear(4, 3).eval() for _ in range(3)]
    for batch_size in (None, 7):
        data = EvalSet(x, y, batch_size=batch_size, num_classes=3, device=torch.device("cpu"))
        for model in models + models:
            assert evaluate_set(model, data) == evaluate(model, x, y, batch_size=batch_size, num_classes=3)


def test_prepared_samples_still_check_labels_and_width() -> None:
    from bitscout.training import EvalSet, evaluate_set

    data = EvalSet(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), num_classes=2, device=torch.device("cpu"))
    with pytest.raises(DataError, match="labels must lie in 0..1; got labels from 0 to 2"):
        evaluate_set(nn.Linear(3, 2), data)
    good = EvalSet(torch.randn(4, 3), torch.tensor([0, 1, 1, 0]), num_classes=2, device=torch.device("cpu"))
    evaluate_set(nn.Linear(3, 2), good)
    with pytest.raises(DataError, match="the model gives 5 outputs per sample but the data has 2 classes"):
        evaluate_set(nn.Linear(3, 5), good)
    with pytest.raises(DataError, match="x has 4 samples but y has 3 labels"):
        EvalSet(torch.randn(4, 3), torch.tensor([0, 1, 1]), device=torch.device("cpu"))


@pytest.mark.parametrize("num_classes", [5, 40])  # one confusion-matrix bincount, and counts apart
@pytest.mark.parametrize("batch_size", [None, 97])
def test_evaluate_set_to_the_bit_of_the_per_class_definition(num_classes: int, batch_size: int | None) -> None:
    """Every metric equals (==) its definition computed here with plain tensor operations:
    per sample ``log(sum_k exp(x_k - m)) - (x_label - m)`` in float32 (the classes added in
    order), each chunk's losses summed in float64 by numpy and the chunks in order, the
    per-class counts by masks, and torch's float64 mean of the recalls."""
    from bitscout.training import EvalSet, evaluate_set

    torch.manual_seed(num_classes)
    n = 1000
    x, y = torch.randn(n, 8), torch.randint(0, num_classes - 1, (n,))  # the last class never occurs
    model = nn.Linear(8, num_classes).eval()
    data = EvalSet(x, y, batch_size=batch_size, num_classes=num_classes, device=torch.device("cpu"))
    step = n if batch_size is None else batch_size
    with torch.inference_mode():
        logits = [model(x[s : s + step]) for s in range(0, n, step)]
        loss = 0.0
        for s, chunk in zip(range(0, n, step), logits):
            shifted = chunk - chunk.max(dim=1, keepdim=True).values
            total = torch.exp(shifted[:, 0])
            for k in range(1, num_classes):
                total = total + torch.exp(shifted[:, k])
            per_sample = torch.log(total) - shifted.gather(1, y[s : s + step, None])[:, 0]
            loss += float(per_sample.numpy().astype(np.float64).sum())
        pred = torch.cat(logits).argmax(-1)
        reference = torch.nn.functional.cross_entropy(torch.cat(logits), y).item()
    recalls = [
        float(((pred == c) & (y == c)).sum()) / max(int((y == c).sum()), 1)
        for c in range(num_classes)
        if bool((y == c).any()) or bool((pred == c).any())
    ]
    for _ in range(2):  # the first call checks and counts the labels; the second reuses them
        result = evaluate_set(model, data)
        assert result.accuracy == int((pred == y).sum()) / n
        assert result.balanced_accuracy == float(torch.tensor(recalls, dtype=torch.float64).mean())
        assert result.loss == loss / n
        assert result.loss == pytest.approx(reference, rel=1e-6)  # PyTorch's, but for the last bits
