"""Plots and tables of a search, from hand-made records."""

from __future__ import annotations

import itertools
import random

import pytest

from bitscout.errors import SearchError
from bitscout.report import format_summary, format_table, layer_widths, plot_best_widths, plot_objective, plot_pareto
from bitscout.study import SearchResult, TrialRecord, pareto_front

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _record(number, acc, bits, *, state="COMPLETE", dup=None, widths=(4, 8)):
    cfg = {
        "fc1": {"name": "integer", "data_in_width": widths[0], "data_in_frac_width": 2, "weight_width": widths[1], "weight_frac_width": 4, "bias_width": 8, "bias_frac_width": 4},
        "fc2": "float",
    }
    return TrialRecord(
        number=number,
        state=state,
        values=(acc - 0.01 * bits,) if state == "COMPLETE" else (),
        software_metrics={"accuracy": acc} if state == "COMPLETE" else {},
        hardware_metrics={"average_bitwidth": bits, "average_bitwidth_ratio": bits / 32} if state == "COMPLETE" else {},
        sampled_config=cfg,
        duplicate_of=dup,
        error=None if state == "COMPLETE" else "RuntimeError: boom",
    )


def _brute_pareto(points, directions):
    signs = [1 if d == "maximize" else -1 for d in directions]
    keep = []
    for i, p in enumerate(points):
        dominated = False
        for j, q in enumerate(points):
            if j == i:
                continue
            ge = all(s * a >= s * b for a, b, s in zip(q, p, signs))
            gt = any(s * a > s * b for a, b, s in zip(q, p, signs))
            dominated |= ge and gt
        if not dominated:
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(5))
def test_pareto_front_equals_a_brute_force_check(seed):
    rng = random.Random(seed)
    points = [(rng.choice([0.5, 0.6, 0.7, 0.8]), rng.choice([2, 4, 6, 8]), rng.random()) for _ in range(40)]
    directions = ["maximize", "minimize", "maximize"]
    assert pareto_front(points, directions) == _brute_pareto(points, directions)


def test_best_ignores_failures_and_breaks_ties_by_the_earliest_trial():
    records = [_record(0, 0.7, 4), _record(1, 0.9, 4), _record(2, 0.0, 0, state="FAIL"), _record(3, 0.9, 4, dup=1), _record(4, 0.9, 4)]
    result = SearchResult(trials=records, directions=["maximize"])
    assert result.best.number == 1
    assert (result.n_trials, result.n_unique, result.n_duplicates, result.n_failed) == (5, 3, 1, 1)
    assert [v for _, v in result.best_so_far()] == pytest.approx([0.66, 0.86, 0.86, 0.86])
    minimize = SearchResult(trials=records, directions=["minimize"])
    assert minimize.best.number == 0
    with pytest.raises(SearchError, match="Pareto"):
        SearchResult(trials=records, directions=["maximize", "minimize"]).best


def test_layer_widths_reads_the_flat_config_and_leaves_float_layers_empty():
    assert layer_widths(_record(0, 0.5, 4, widths=(3, 5))) == {
        "fc1": {"data_in": 3, "weight": 5, "bias": 8},
        "fc2": {},
    }


def test_plots_are_written_as_png(tmp_path):
    records = [_record(i, 0.5 + 0.05 * (i % 5), 2 + i % 7) for i in range(12)] + [_record(12, 0, 0, state="FAIL")]
    result = SearchResult(trials=records, directions=["maximize"], objective_names=["objective"])
    for path in (
        plot_objective(result, tmp_path / "o.png"),
        plot_pareto(records, "average_bitwidth", tmp_path / "p.png"),
        plot_best_widths(result.best, tmp_path / "w.png"),
    ):
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    with pytest.raises(SearchError, match="bitops"):
        plot_pareto(records, "bitops", tmp_path / "x.png")


def test_summary_names_counts_best_config_and_outputs(tmp_path):
    records = [_record(0, 0.7, 4), _record(1, 0.9, 6, widths=(3, 5)), _record(2, 0.9, 6, dup=1), _record(3, 0, 0, state="FAIL")]
    result = SearchResult(trials=records, directions=["maximize"], study_name="demo", objective_names=["objective"], wall_time_s=1.25)
    text = format_summary(result, {"log": tmp_path / "log.json"})
    assert "trials              4" in text
    assert "unique evaluations  2" in text and "duplicates          1" in text and "failures            1" in text
    assert "best trial: 1, objective = 0.84 (maximize)" in text
    assert "accuracy = 0.9" in text and "average_bitwidth = 6" in text and "ratio" not in text
    assert "fc1  integer: data_in 3b (2 frac), weight 5b (4 frac), bias 8b (4 frac)\nfc2  float" in text
    assert str(tmp_path / "log.json") in text


def test_summary_of_a_pareto_search_lists_the_set():
    records = [_record(0, 0.7, 4), _record(1, 0.9, 6), _record(2, 0.6, 5)]
    result = SearchResult(
        trials=[r.with_updates(values=(r.software_metrics["accuracy"], r.hardware_metrics["average_bitwidth"])) for r in records],
        directions=["maximize", "minimize"],
        objective_names=["accuracy", "average_bitwidth"],
    )
    text = format_summary(result)
    assert "Pareto set (2 trials" in text
    assert [t.number for t in result.pareto] == [0, 1]


def test_format_table_aligns_columns():
    assert format_table([("a", 1), ("bbb", 22)], header=["k", "v"]).splitlines() == ["k    v", "---  --", "a    1", "bbb  22"]


def test_a_full_grid_has_one_point_on_its_front():
    points = [(a, b) for a, b in itertools.product([0.1, 0.2, 0.3], [1, 2, 3])]
    assert [points[i] for i in pareto_front(points, ["maximize", "minimize"])] == [(0.3, 1)]
    assert [points[i] for i in pareto_front(points, ["minimize", "maximize"])] == [(0.1, 3)]


def test_the_pareto_table_labels_scaled_values_and_prints_the_raw_metrics_beside_them():
    trials = [
        TrialRecord(number=i, state="COMPLETE", values=(acc, 0.2 * bits), software_metrics={"accuracy": acc},
                    hardware_metrics={"average_bitwidth": bits}, sampled_config={"fc1": "float"})
        for i, (acc, bits) in enumerate([(0.9, 8.0), (0.8, 4.0)])
    ]
    result = SearchResult(trials=trials, directions=["maximize", "minimize"], objective_names=["accuracy", "average_bitwidth"])
    lines = format_summary(result).splitlines()
    header = next(line for line in lines if line.startswith("trial "))
    assert header.split() == ["trial", "accuracy", "(scaled)", "average_bitwidth", "(scaled)", "accuracy", "average_bitwidth"]
    rows = [line.split() for line in lines[lines.index(header) + 2 :][:2]]
    assert rows == [["0", "0.9", "1.6", "0.9", "8"], ["1", "0.8", "0.8", "0.8", "4"]]


def test_pareto_plots_mark_the_float_model_when_the_run_measured_it(tmp_path, monkeypatch):
    from bitscout.evaluation import Evaluation
    from bitscout.metrics import TrialMetrics
    from bitscout.report import _outputs

    seen = {}

    def fake_plot_pareto(records, metric, path, **kw):
        seen[metric] = kw["reference"]
        return path

    monkeypatch.setattr(_outputs, "plot_pareto", fake_plot_pareto)
    records = [_record(0, 0.7, 4), _record(1, 0.9, 8)]
    result = SearchResult(trials=records, directions=["maximize"])
    _outputs.write_plots(result, tmp_path)
    assert seen == {"average_bitwidth": None}  # no baseline: no point
    result.baseline = Evaluation(metrics=TrialMetrics(software={"accuracy": 0.95}, hardware={"average_bitwidth": 32.0}), values=(0.63,))
    _outputs.write_plots(result, tmp_path)
    assert seen == {"average_bitwidth": (32.0, 0.95)}


def test_the_sensitivity_view_averages_the_objective_per_choice_of_each_parameter(tmp_path):
    from bitscout.report._plots import choice_values, plot_sensitivity

    def rec(number, w1, w2, value, **kw):
        return TrialRecord(number=number, state=kw.get("state", "COMPLETE"), values=(value,) if kw.get("state") is None else (),
                           params={"fc1/weight_width": w1, "fc2/weight_width": w2}, duplicate_of=kw.get("dup"))

    trials = [rec(0, 2, 8, 0.5), rec(1, 8, 8, 0.9), rec(2, 8, 8, 0.9, dup=1), rec(3, 2, 8, 0.0, state="FAIL"), rec(4, 8, 8, 0.7)]
    result = SearchResult(trials=trials, directions=["maximize"])
    assert choice_values(result) == {"fc1/weight_width": {2: [0.5], 8: [0.9, 0.7]}, "fc2/weight_width": {8: [0.5, 0.9, 0.7]}}
    assert plot_sensitivity(result, tmp_path / "s.png").read_bytes()[:8] == PNG_MAGIC
    two = SearchResult(trials=trials, directions=["maximize", "minimize"])
    assert plot_sensitivity(two, tmp_path / "t.png") is None


def test_int_layer_leaves_out_fields_left_to_their_default():
    from bitscout.report import describe_layer

    cfg = {
        "name": "int",
        "data_in_width": 8, "data_in_symmetric": True, "data_in_granularity": "tensor",
        "data_in_scale": "NA", "data_in_zero_point": "NA",
        "weight_width": 4, "weight_symmetric": False, "weight_granularity": "channel",
        "weight_scale": "NA", "weight_zero_point": "NA",
    }
    assert describe_layer(cfg) == (
        "int: data_in 8b (symmetric True, granularity tensor), weight 4b (symmetric False, granularity channel)"
    )
    assert describe_layer({"name": "integer", "weight_width": 8, "weight_frac_width": "NA"}) == "integer: weight 8b (NA frac)"


def test_summary_gives_every_size_and_the_latency_its_unit():
    # user8: `model_size = 6312, weight_bytes = 6176` left the reader guessing bits or bytes.
    record = TrialRecord(
        number=0,
        state="COMPLETE",
        values=(0.9,),
        software_metrics={"accuracy": 0.9},
        hardware_metrics={"model_size": 6312.0, "weight_bytes": 772.0, "latency": 2.5, "model_size_ratio": 0.2},
        constraints={"weight_bytes.max": 196.0},
        sampled_config={"fc1": "float"},
    )
    result = SearchResult(trials=[record], directions=["maximize"], objective_names=["objective"])
    text = format_summary(result)
    # 6312 / 1024 = 6.1640625 KiB
    assert "model_size = 6,312 bytes (6.16 KiB), weight_bytes = 772 bytes, latency = 2.5 ms" in text
    assert "weight_bytes.max = 196 bytes" in text
    assert "accuracy = 0.9," in text  # a metric without a unit prints bare



def test_summary_counts_the_configurations_a_budget_ruled_out_before_the_search():
    # A brute force under a budget never proposes them: "skipped 0" alone contradicted
    # the start line's "2,688 of the 3,072 are ruled out".
    record = TrialRecord(
        number=0, state="COMPLETE", values=(0.9,), software_metrics={"accuracy": 0.9},
        hardware_metrics={"model_size": 243.0}, constraints={"model_size.max": -7.0}, sampled_config={"fc1": "float"},
    )
    result = SearchResult(trials=[record], directions=["maximize"], objective_names=["objective"], ruled_out=2688)
    assert (
        "skipped             0 (infeasible from the configuration; never evaluated); 2,688 more "
        "configurations ruled out so before the search (never proposed)"
    ) in format_summary(result)
    result.ruled_out = 0
    assert "ruled out" not in format_summary(result)


def test_pareto_summary_heads_a_size_column_with_its_unit():
    records = [
        TrialRecord(number=n, state="COMPLETE", values=(acc, size), software_metrics={"accuracy": acc},
                    hardware_metrics={"model_size": size}, sampled_config={"fc1": "float"})
        for n, (acc, size) in enumerate([(0.9, 2048.0), (0.8, 1024.0)])
    ]
    text = format_summary(SearchResult(trials=records, directions=["maximize", "minimize"], objective_names=["accuracy", "model_size"]))
    assert "model_size (bytes)" in text
    assert "model_size = 2,048 bytes (2 KiB)" in text


def test_a_float_model_at_chance_level_is_flagged_with_the_datas_class_order() -> None:
    from bitscout.report import chance_level_note

    # 10 classes: chance 0.1, flagged up to 0.1 + 0.1 * 0.9 = 0.19.
    assert chance_level_note({"balanced_accuracy": 0.19, "accuracy": 0.5}, 10) is not None
    assert chance_level_note({"balanced_accuracy": 0.191}, 10) is None
    # 2 classes: chance 0.5, flagged up to 0.55; accuracy stands in without a balanced one.
    assert chance_level_note({"accuracy": 0.55}, 2) is not None and chance_level_note({"accuracy": 0.56}, 2) is None
    assert chance_level_note({"loss": 2.3}, 10) is None
    note = chance_level_note({"balanced_accuracy": 0.17}, 3, ("cat", "dog", "emu"))
    assert note == (
        "the float model's balanced accuracy is 0.170, about chance for 3 classes (0.333): it does "
        "not classify this data, so every candidate is measured against a model that guesses. Check "
        "that the checkpoint was trained on this data, with its classes numbered as the data numbers "
        "them (this data's: cat=0, dog=1, emu=2)"
    )
    assert chance_level_note({"balanced_accuracy": 0.2}, 3, ("0", "1", "2")).endswith("as the data numbers them")
    # user9: a breast-cancer model whose two classes the data numbers the other way round
    # scored 0.023, reported as "about chance". Below half of chance: misnamed classes.
    swapped = chance_level_note({"balanced_accuracy": 0.023}, 2, ("benign", "malignant"))
    assert swapped == (
        "the float model's balanced accuracy is 0.023, far below chance for 2 classes (0.500): it "
        "tells classes apart, but not under the numbers this data gives them, so every candidate is "
        "measured against a model that misnames them. Check that the model's output i is the data's "
        "class i (text labels are numbered in sorted order) (this data's: benign=0, malignant=1)"
    )
    assert chance_level_note({"balanced_accuracy": 0.25}, 2).startswith(
        "the float model's balanced accuracy is 0.250, about chance"
    )


def test_quantize_writes_formats_as_the_search_summary_does() -> None:
    # user9: `quantize` printed int8.4 and int8/ch where the summary printed 8b (4 frac) and
    # 8b (granularity channel) for the same settings.
    from bitscout.quant import parse_layer_config
    from bitscout.report import describe_formats, describe_layer

    tensors = ("data_in", "weight", "bias")
    fixed = {"name": "integer", "data_in_width": 8, "data_in_frac_width": 7, "weight_width": 4,
             "weight_frac_width": 2, "bias_width": 8, "bias_frac_width": 4}
    assert describe_formats(parse_layer_config(fixed, where="t"), tensors) == describe_layer(fixed) == (
        "integer: data_in 8b (7 frac), weight 4b (2 frac), bias 8b (4 frac)"
    )
    scaled = {"name": "int", "data_in_width": 8, "data_in_symmetric": False, "data_in_scale": 0.0123,
              "data_in_zero_point": -5, "weight_width": 4, "weight_granularity": "channel", "bias_width": 8}
    assert describe_formats(parse_layer_config(scaled, where="t"), tensors) == describe_layer(scaled) == (
        "int: data_in 8b (symmetric False, scale 0.0123, zero_point -5), weight 4b (granularity channel), bias 8b"
    )
    mini = {"name": "minifloat", "data_in_width": 8, "data_in_exponent_width": 4, "weight_width": 8,
            "weight_exponent_width": 4, "bias_width": 8, "bias_exponent_width": 4}
    assert describe_formats(parse_layer_config(mini, where="t"), tensors) == (
        "minifloat: data_in fp8e4m3b7, weight fp8e4m3b7, bias fp8e4m3b7"
    )
