"""Exhaustive evaluation gives, bit for bit, what trial-by-trial evaluation gives.

The reference is the ordinary path: ``Quantizer.build(config)`` then
``bitscout.training.evaluate`` (through ``RunnerSet.run``), one configuration at a time.
Equality is exact (``==`` on floats), not approximate.
"""

from __future__ import annotations

import functools
import random
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from bitscout.data import Dataset, load_dataset
from bitscout.errors import SearchError
from bitscout.graph import trace
from bitscout.metrics import (
    AverageBitwidth,
    BasicEvaluation,
    BasicTrain,
    Bitops,
    Latency,
    ModelSize,
    Objective,
    ObjectiveTerm,
    RunContext,
    RunnerSet,
)
from bitscout.models import build_model
from bitscout.quant import Quantizer
from bitscout.space import SearchSpace
from bitscout.strategies import get_strategy
from bitscout.study import run_search
from bitscout.evaluation import (
    DEFAULT_BLOCK_ELEMENTS,
    RunnerEvaluator,
    TableEvaluator,
    evaluate_exhaustively,
    evaluate_runner_set_exhaustively,
    exhaustive_support,
)
from bitscout.training import evaluate

NUM_SAMPLES = 200


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


def _runner_set(model: nn.Module, dataset: Dataset, *, latency: bool = False) -> RunnerSet:
    traced = trace(model.eval(), dataset.val.x[:2])
    context = RunContext(
        traced=traced,
        quantizer=Quantizer(traced),
        dataset=dataset,
        device=torch.device("cpu"),
        batch_size=64,
    )
    runners: list[Any] = [
        BasicEvaluation(BasicEvaluation.Options(num_samples=NUM_SAMPLES), context),
        AverageBitwidth(AverageBitwidth.Options(), context),
        Bitops(Bitops.Options(), context),
        ModelSize(ModelSize.Options(), context),
    ]
    if latency:
        runners.append(Latency(Latency.Options(repeats=1, warmup=0), context))
    return RunnerSet(runners, context)


def _fit(model: nn.Module, dataset: Dataset, steps: int = 40) -> nn.Module:
    """A few full-batch gradient steps, so that quantization changes the accuracy.

    (Plain updates rather than torch.optim, whose first use imports for seconds.)
    """
    x, y = dataset.train.x, dataset.train.y
    model.train()
    for _ in range(steps):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.5 * p.grad
    return model.eval()


@functools.cache
def _mlp(dataset: Dataset, hidden: tuple[int, ...]) -> nn.Module:
    torch.manual_seed(0)
    return _fit(build_model("mlp", dataset.info, {"hidden": hidden}), dataset)


def _linear_space(runners: RunnerSet, data_in: list[Any], weight: list[Any], **extra: Any) -> SearchSpace:
    table = runners.context.traced.table
    choices = {
        layer.name: {
            "name": "integer",
            "data_in_width": data_in,
            "weight_width": weight,
            "bias_width": 8,
            **extra,
        }
        for layer in table
        if layer.op == "linear"
    }
    return SearchSpace(table, choices)


def _assert_same(result: Any, runners: RunnerSet, space: SearchSpace, indices: list[int]) -> None:
    for index in indices:
        config = space.decode(space.distinct_params_at(index))
        expected = runners.run(config)
        got = result.metrics_at(index)
        assert got.software == expected.software, (index, got.software, expected.software)
        assert got.hardware == expected.hardware, (index, got.hardware, expected.hardware)
        assert result.distinct_index(config) == index


def test_whole_small_space_is_bit_identical_to_trial_by_trial(digits: Dataset) -> None:
    runners = _runner_set(_mlp(digits, (16, 8)), digits)
    space = _linear_space(runners, [3, 8], [2, 5])
    assert space.distinct_size == 4**3
    result = evaluate_runner_set_exhaustively(space, runners)
    assert len(result) == 64 and result.num_samples == NUM_SAMPLES
    _assert_same(result, runners, space, list(range(64)))
    # The configurations really differ: a 2-bit weight everywhere loses accuracy.
    assert len(set(result.accuracy.tolist())) > 5


def test_sample_of_a_larger_space_and_the_sharing_it_does(digits: Dataset) -> None:
    runners = _runner_set(_mlp(digits, (16, 8)), digits)
    widths = [2, 3, 4, 8]
    space = _linear_space(runners, widths, widths)
    result = evaluate_runner_set_exhaustively(space, runners)
    assert len(result) == 16**3
    _assert_same(result, runners, space, random.Random(1).sample(range(16**3), 25))
    # Layers in graph order: fc1 (16), relu1 (1), fc2 (16), relu2 (1), fc3 (16). Each
    # level runs once per prefix: 16 + 16 + 256 + 256 + 4096 layer calls, where one run
    # per configuration would make 5 * 4096.
    assert result.forward_calls == 16 + 16 + 256 + 256 + 4096


class _Residual(nn.Module):
    """A DAG: fc2's output is added to fc1's, and the sum goes through fc3."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 12)
        self.fc2 = nn.Linear(12, 12)
        self.fc3 = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        return self.fc3(h + self.fc2(h) * 0.5)


@pytest.mark.parametrize("one_per_block", [False, True])
def test_dag_with_skip_connection_and_chunked_samples(digits: Dataset, one_per_block: bool) -> None:
    # The losses of many configurations scored at once, or of one configuration a leaf
    # block: both give evaluate()'s bits, over six chunks.
    torch.manual_seed(3)
    model = _fit(_Residual(), digits)
    traced = trace(model, digits.val.x[:2])
    quantizer = Quantizer(traced)
    choices = {
        name: {"name": "integer", "data_in_width": [3, 6], "weight_width": [2, 4], "bias_width": 8}
        for name in ("fc1", "fc2", "fc3")
    }
    # The add of the skip connection is quantizable too: its input widths are searched.
    add = next(layer.name for layer in traced.table if layer.op == "add")
    choices[add] = {"name": ["NA", "integer"], "data_in_width": 4, "weight_width": 4}
    space = SearchSpace(traced.table, choices)
    assert space.distinct_size == 4**3 * 2
    x, y = digits.val.x[:NUM_SAMPLES], digits.val.y[:NUM_SAMPLES]
    result = evaluate_exhaustively(
        traced, space, x, y, quantizer=quantizer, batch_size=37, block_elements=1 if one_per_block else DEFAULT_BLOCK_ELEMENTS
    )
    for index in range(space.distinct_size):
        config = space.decode(space.distinct_params_at(index))
        expected = evaluate(quantizer.build(config), x, y, batch_size=37)
        assert result.accuracy[index] == expected.accuracy
        assert result.balanced_accuracy[index] == expected.balanced_accuracy
        assert result.loss[index] == expected.loss


class _InPlace(nn.Module):
    """In-place ops on values that several branches of the walk share.

    (torch.fx records ``h *= 0.5`` as an out-of-place ``mul``; ``h.mul_`` and
    ``ReLU(inplace=True)`` stay in place.)
    """

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 12)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(12, 12)
        self.fc3 = nn.Linear(12, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.fc1(x))
        g = self.fc2(h)
        h.mul_(0.5)  # written into a value that every branch of fc2 reads
        return self.fc3(torch.relu_(g) + h)  # written into fc2's own output: harmless


def test_in_place_ops_do_not_leak_between_branches(digits: Dataset) -> None:
    torch.manual_seed(4)
    model = _InPlace().eval()  # untrained: autograd refuses these in-place ops; losses differ anyway
    traced = trace(model, digits.val.x[:2])
    quantizer = Quantizer(traced)
    relu = next(layer.name for layer in traced.table if layer.op == "relu")
    choices: dict[str, Any] = {
        name: {"name": "integer", "data_in_width": [3, 8], "weight_width": [2, 6], "bias_width": 8}
        for name in ("fc1", "fc2", "fc3")
    }
    # The in-place ReLU is quantizable: float or 3-bit input, two branches over one tensor.
    choices[relu] = {"name": ["NA", "integer"], "data_in_width": 3}
    space = SearchSpace(traced.table, choices)
    x, y = digits.val.x[:NUM_SAMPLES], digits.val.y[:NUM_SAMPLES]
    result = evaluate_exhaustively(traced, space, x, y, quantizer=quantizer)
    for index in random.Random(5).sample(range(space.distinct_size), 30):
        config = space.decode(space.distinct_params_at(index))
        expected = evaluate(quantizer.build(config), x, y)
        assert (result.accuracy[index], result.loss[index]) == (expected.accuracy, expected.loss)


def test_configs_that_build_the_same_model_share_one_entry(digits: Dataset) -> None:
    runners = _runner_set(_mlp(digits, (8,)), digits)
    table = runners.context.traced.table
    # name = NA leaves a layer float, whatever its widths: 2 * 2 vectors, 1 + 2 models.
    choices = {
        layer.name: {"name": ["NA", "integer"], "weight_width": [2, 8], "data_in_width": 8, "bias_width": 8}
        for layer in table
        if layer.op == "linear"
    }
    space = SearchSpace(table, choices)
    assert space.size == 16 and space.distinct_size == 9
    result = evaluate_runner_set_exhaustively(space, runners)
    assert len(result) == 9
    for index in range(space.size):
        config = space.decode(space.params_at(index))
        assert result.metrics_for(config) == runners.run(config)


@pytest.mark.parametrize("loss", [True, False])
def test_cnn_matches_trial_by_trial(digits: Dataset, loss: bool) -> None:
    torch.manual_seed(0)
    runners = _runner_set(build_model("cnn", digits.info, {"channels": [4, 4]}), digits)
    table = runners.context.traced.table
    choices = {
        layer.name: {"name": "integer", "data_in_width": [4, 8], "weight_width": [3, 6], "bias_width": 8}
        for layer in table
        if layer.op in ("conv2d", "linear")
    }
    space = SearchSpace(table, choices)
    result = evaluate_runner_set_exhaustively(space, runners, loss=loss)
    sample = random.Random(2).sample(range(space.distinct_size), 12)
    if loss:
        _assert_same(result, runners, space, sample)
    else:
        _assert_same_without_loss(result, runners, space, sample)


def test_refuses_runners_that_need_each_built_model(digits: Dataset) -> None:
    runners = _runner_set(_mlp(digits, (8,)), digits, latency=True)
    space = _linear_space(runners, [4, 8], [4])
    reason = exhaustive_support(runners)
    assert reason is not None and "latency" in reason
    with pytest.raises(SearchError, match="latency"):
        evaluate_runner_set_exhaustively(space, runners)

    context = runners.context
    train = BasicTrain(BasicTrain.Options(max_steps=1), context)
    with_train = RunnerSet([runners.software[0], train], context)
    assert "basic_train" in (exhaustive_support(with_train) or "")


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.fc(x)
        return out, out


def test_refuses_a_model_without_one_output_tensor(digits: Dataset) -> None:
    traced = trace(_TwoHeads().eval(), digits.val.x[:2])
    space = SearchSpace(traced.table, {"fc": {"name": "integer", "weight_width": [2, 4], "data_in_width": 8, "bias_width": 8}})
    with pytest.raises(SearchError, match="one tensor of logits"):
        evaluate_exhaustively(traced, space, digits.val.x[:10], digits.val.y[:10])


def test_brute_force_search_from_the_table_equals_the_plain_search(digits: Dataset, tmp_path: Any) -> None:
    runners = _runner_set(_mlp(digits, (16, 8)), digits)
    space = _linear_space(runners, [8], [2, 3, 8])
    objective = Objective(
        [
            ObjectiveTerm("accuracy", 1.0, "maximize", False, "software"),
            ObjectiveTerm("average_bitwidth", 0.02, "minimize", False, "hardware", sign=-1.0),
        ],
        sum_scaled=True,
        direction="maximize",
    )
    strategy = get_strategy("brute_force")

    def search(evaluator: Any, out: str) -> Any:
        sampler = strategy.make_sampler(space, seed=0, directions=objective.directions, options={})
        return run_search(
            space, sampler, evaluator, out_dir=tmp_path / out,
            n_trials=100, progress=False, write_outputs=False,
        )

    table = evaluate_runner_set_exhaustively(space, runners)
    fast = search(TableEvaluator(table, objective), "fast")
    plain = search(RunnerEvaluator(runners, objective), "plain")
    assert len(fast.trials) == len(plain.trials) == 27
    assert [t.values for t in fast.trials] == [t.values for t in plain.trials]
    best = int(np.argmax([objective.evaluate(table.metrics_at(i)).values[0] for i in range(27)]))
    assert fast.best.values == objective.evaluate(table.metrics_at(best)).values


def _arrays(result: Any) -> dict[str, np.ndarray]:
    return {**result.software, **result.hardware}


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_stacked_layer_calls_give_the_same_bits(digits: Dataset, model: str) -> None:
    """Inputs of configs that share a weight format, stacked into one call (the GPU default)."""
    torch.manual_seed(0)
    if model == "mlp":
        runners = _runner_set(_mlp(digits, (16, 8)), digits)
    else:
        runners = _runner_set(build_model("cnn", digits.info, {"channels": [4, 4]}), digits)
    table = runners.context.traced.table
    choices = {
        layer.name: {"name": "integer", "data_in_width": [3, 4, 8], "weight_width": [3, 6], "bias_width": 8}
        for layer in table
        if layer.op in ("conv2d", "linear")
    }
    space = SearchSpace(table, choices)
    one_by_one = evaluate_runner_set_exhaustively(space, runners, stack_elements=0)
    stacked = evaluate_runner_set_exhaustively(space, runners, stack_elements=1 << 22)
    small_stacks = evaluate_runner_set_exhaustively(space, runners, stack_elements=2 * NUM_SAMPLES * 64)
    for other in (stacked, small_stacks):
        for name, values in _arrays(one_by_one).items():
            assert np.array_equal(values, _arrays(other)[name]), name
    _assert_same(stacked, runners, space, random.Random(3).sample(range(space.distinct_size), 8))


def test_a_stacked_call_that_differs_is_dropped_for_one_by_one(digits: Dataset, monkeypatch: Any) -> None:
    """When a taller input changes the bits (another kernel), the layer stops stacking."""
    import bitscout.evaluation._exhaustive as engine

    runners = _runner_set(_mlp(digits, (16, 8)), digits)
    space = _linear_space(runners, [3, 8], [2, 5])
    reference = evaluate_runner_set_exhaustively(space, runners, stack_elements=0)
    checks = []

    def never_same(a: torch.Tensor, b: torch.Tensor) -> bool:
        checks.append(a.shape)
        return False

    monkeypatch.setattr(engine, "_same_bits", never_same)
    result = evaluate_runner_set_exhaustively(space, runners, stack_elements=1 << 22)
    # Layer outputs (samples x features) were checked, besides the loss's self-check.
    assert any(len(shape) == 2 and shape[0] == NUM_SAMPLES for shape in checks)
    for name, values in _arrays(reference).items():
        assert np.array_equal(values, _arrays(result)[name]), name


def test_exact_sums_bound_at_its_edge() -> None:
    """The bound of _exact_sums: every term's largest magnitude, in units of the finest grid, <= 2**24."""
    from bitscout.evaluation._exhaustive import _exact_sums
    from bitscout.quant.formats import IntegerFormat

    int8, int16 = IntegerFormat(8, 4), IntegerFormat(16, 8)
    # 8-bit codes: products up to 2**14 units; 2**10 of them reach 2**24 exactly.
    assert _exact_sums(2**10, int8, int8, None, has_bias=False)
    assert not _exact_sums(2**10 + 1, int8, int8, None, has_bias=False)
    # A bias on the same grid (f_b = 8 = f_in + f_w) adds 2**7 units: one term fewer fits.
    assert not _exact_sums(2**10, int8, int8, IntegerFormat(8, 8), has_bias=True)
    assert _exact_sums(2**10 - 1, int8, int8, IntegerFormat(8, 8), has_bias=True)
    # A finer bias grid scales every product's units: f_b = 12 -> products 2**18 units each.
    assert _exact_sums(2**6 - 1, int8, int8, IntegerFormat(8, 12), has_bias=True)
    assert not _exact_sums(2**6, int8, int8, IntegerFormat(8, 12), has_bias=True)
    assert not _exact_sums(64, int16, int16, int8, has_bias=True)  # 16-bit codes: 2**36 units
    assert not _exact_sums(64, int8, int8, None, has_bias=True)  # a float bias is off any grid
    assert not _exact_sums(64, None, int8, int8, has_bias=True)  # a float input too
    assert not _exact_sums(64, IntegerFormat(8, "auto"), int8, int8, has_bias=True)


def test_weights_side_by_side_give_each_configs_bits_when_sums_are_exact() -> None:
    """One F.linear with concatenated weights equals one call per weight, bit for bit, at the bound.

    Operands are random codes, many at the extremes of their grids, on shapes where the
    narrow and the wide call use different kernels (on float data of these shapes, 20 of
    the 20 narrow calls differed from the wide call in some bit, measured with MKL).
    """
    from bitscout.evaluation._exhaustive import _exact_sums
    from bitscout.quant.formats import IntegerFormat

    generator = torch.Generator().manual_seed(0)
    fmt_in, fmt_w, fmt_b = IntegerFormat(8, 3), IntegerFormat(8, 5), IntegerFormat(8, 4)
    for rows, terms, outputs, copies in [(540, 32, 10, 6), (37, 64, 1, 5), (512, 256, 10, 6), (3, 1000, 7, 3)]:
        assert _exact_sums(terms, fmt_in, fmt_w, fmt_b, has_bias=True)

        def codes(shape: tuple[int, ...], fmt: IntegerFormat) -> torch.Tensor:
            lo, hi = fmt.levels
            extremes = torch.tensor([float(lo), float(hi)])[torch.randint(0, 2, shape, generator=generator)]
            mixed = torch.randint(lo, hi + 1, shape, generator=generator).float()
            return torch.where(torch.rand(shape, generator=generator) < 0.5, extremes, mixed) * 2.0**-fmt.frac_width

        x = codes((rows, terms), fmt_in)
        weights = [codes((outputs, terms), fmt_w) for _ in range(copies)]
        biases = [codes((outputs,), fmt_b) for _ in range(copies)]
        joined = torch.nn.functional.linear(x, torch.cat(weights), torch.cat(biases))
        for j, (w, b) in enumerate(zip(weights, biases)):
            alone = torch.nn.functional.linear(x, w, b)
            assert torch.equal(joined[:, j * outputs : (j + 1) * outputs].contiguous().view(torch.int32),
                               alone.view(torch.int32)), (rows, terms, outputs, j)


def test_exact_and_inexact_layers_in_one_space_match_trial_by_trial(digits: Dataset) -> None:
    """Layers whose sums may round (16-bit operands) fall back to one call per config."""
    runners = _runner_set(_mlp(digits, (16, 8)), digits)
    space = _linear_space(runners, [4, 16], [3, 16])
    result = evaluate_runner_set_exhaustively(space, runners)
    assert len(result) == 4**3
    _assert_same(result, runners, space, list(range(64)))


def test_product_block_puts_each_config_in_its_place() -> None:
    """_Product: every input format times the same weights in one call, rows in config order."""
    from bitscout.evaluation._exhaustive import _Product
    from bitscout.quant import fake_quantize
    from bitscout.quant.formats import IntegerFormat

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(50, 12, generator=generator) * 3
    weights = [IntegerFormat(5, 3).quantize(torch.randn(4, 12, generator=generator)) for _ in range(3)]
    biases = [IntegerFormat(8, 4).quantize(torch.randn(4, generator=generator)) for _ in range(3)]
    w, b = torch.cat(weights), torch.cat(biases)
    formats = [IntegerFormat(3, 1), IntegerFormat(8, 4)]
    # Configs interleaved: config 2j + a has input format a and weight j.
    groups = [(fmt, [2 * j + a for j in range(3)], w, b) for a, fmt in enumerate(formats)]
    product = _Product.of(groups, 6)
    assert product is not None and product.order is not None
    block = product.block(x)
    by_class = product.block_t(x)  # (configs, outputs, samples), the weights times x's transpose
    for a, fmt in enumerate(formats):
        for j in range(3):
            expected = torch.nn.functional.linear(fake_quantize(x, fmt), weights[j], biases[j])
            assert torch.equal(block[2 * j + a].view(torch.int32), expected.view(torch.int32)), (a, j)
            assert torch.equal(by_class[2 * j + a].t().view(torch.int32), expected.view(torch.int32)), (a, j)
    # Groups with other weights have no product form.
    other = [(formats[0], [0, 1, 2], w, b), (formats[1], [3, 4, 5], w.flip(0), b)]
    assert _Product.of(other, 6) is None


# ----- scoring without the loss ------------------------------------------------------------


def _assert_same_without_loss(result: Any, runners: RunnerSet, space: SearchSpace, indices: list[int]) -> None:
    assert result.loss is None and set(result.software) == {"accuracy", "balanced_accuracy"}
    for index in indices:
        config = space.decode(space.distinct_params_at(index))
        expected = runners.run(config)
        got = result.metrics_at(index)
        assert got.software == {k: expected.software[k] for k in ("accuracy", "balanced_accuracy")}, index
        assert got.hardware == expected.hardware, index


@pytest.mark.parametrize(
    ("data_in", "weight", "by_class"),
    [
        ([3, 8], [2, 5], True),  # every input format meets the same weights: the product block
        ([8], [2, 3, 8], True),  # one input format: one joined call per format
        ([4, 16], [3, 16], True),  # 16-bit operands may round: those configs alone, the rest joined
        ([16], [12, 16], False),  # none exact: per-config calls, argmax per row
    ],
)
def test_without_the_loss_accuracies_are_trial_by_trials(
    digits: Dataset, data_in: list[int], weight: list[int], by_class: bool, monkeypatch: Any
) -> None:
    import bitscout.evaluation._exhaustive as engine

    calls = []
    original = engine._Scores._correct_by_class
    monkeypatch.setattr(engine._Scores, "_correct_by_class", lambda self, *args: calls.append(1) or original(self, *args))
    runners = _runner_set(_mlp(digits, (16, 8)), digits)
    space = _linear_space(runners, data_in, weight)
    result = evaluate_runner_set_exhaustively(space, runners, loss=False)
    assert bool(calls) == by_class
    with_loss = evaluate_runner_set_exhaustively(space, runners)
    assert np.array_equal(result.accuracy, with_loss.accuracy)
    assert np.array_equal(result.balanced_accuracy, with_loss.balanced_accuracy)
    _assert_same_without_loss(result, runners, space, list(range(space.distinct_size)))


def test_without_the_loss_on_a_dag_in_chunks(digits: Dataset, monkeypatch: Any) -> None:
    import bitscout.evaluation._exhaustive as engine

    # Hit counts made block by block here (by thousands of configurations by default).
    monkeypatch.setattr(engine, "_HITS_ELEMENTS", 1)
    torch.manual_seed(3)
    model = _fit(_Residual(), digits)
    traced = trace(model, digits.val.x[:2])
    quantizer = Quantizer(traced)
    choices = {
        name: {"name": "integer", "data_in_width": [2, 6], "weight_width": [2, 4], "bias_width": 8}
        for name in ("fc1", "fc2", "fc3")
    }
    space = SearchSpace(traced.table, choices)
    x, y = digits.val.x[:NUM_SAMPLES], digits.val.y[:NUM_SAMPLES]
    result = evaluate_exhaustively(traced, space, x, y, quantizer=quantizer, batch_size=37, loss=False)
    for index in range(space.distinct_size):
        expected = evaluate(quantizer.build(space.decode(space.distinct_params_at(index))), x, y, batch_size=37)
        assert (result.accuracy[index], result.balanced_accuracy[index]) == (
            expected.accuracy,
            expected.balanced_accuracy,
        )


def test_correct_by_class_is_argmax_with_ties_and_non_finite_logits() -> None:
    """The first maximum wins, as argmax's: ties between classes are the rule on coarse grids."""
    from bitscout.evaluation._exhaustive import _Scores

    generator = torch.Generator().manual_seed(0)
    classes, samples = 5, 300
    y = torch.randint(0, classes, (samples,), generator=generator)
    scores = _Scores(8, classes, 8, y, loss=False)
    scores.set_chunk(y)
    # Logits on a grid of 3 values: most rows hold ties, many at the label.
    logits = torch.randint(-1, 2, (8, classes, samples), generator=generator).float()
    logits[0] = 0.0  # all tied: right only for label 0
    logits[1, :, ::7] = float("-inf")  # a whole column at -inf: argmax says class 0
    logits[2, 3, 5] = -float("inf")
    def correct(block: torch.Tensor) -> torch.Tensor:
        top = block.amax(dim=1)
        own = block.gather(1, y.view(1, 1, -1).expand(block.shape[0], 1, -1)).squeeze(1)
        return scores._correct_by_class(block, top, own)

    got = correct(logits)
    assert torch.equal(got, logits.argmax(dim=1) == y)
    assert int(got[0].sum()) == int((y == 0).sum())
    for special in (float("nan"), float("inf")):
        with_special = logits.clone()
        with_special[4, 2, 10] = special
        with_special[6, int(y[11]), 11] = special
        assert torch.equal(correct(with_special), with_special.argmax(dim=1) == y)


def test_table_evaluator_computes_the_loss_only_when_read(digits: Dataset) -> None:
    from bitscout.evaluation import needs_loss

    runners = _runner_set(_mlp(digits, (8,)), digits)
    space = _linear_space(runners, [4, 8], [2, 4])

    def objective(metric: str) -> Objective:
        return Objective([ObjectiveTerm(metric, 1.0, "maximize", False, "software")], sum_scaled=True, direction="maximize")

    assert not needs_loss(objective("accuracy")) and needs_loss(objective("loss"))
    plain = TableEvaluator.from_runners(space, runners, objective("accuracy"))
    assert plain.table.loss is None
    config = space.decode(space.params_at(3))
    assert plain.measure(config).software == {
        k: v for k, v in runners.run(config).software.items() if k != "loss"
    }
    with_loss = TableEvaluator.from_runners(space, runners, objective("loss"))
    assert with_loss.measure(config) == runners.run(config)
