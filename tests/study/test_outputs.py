"""The run folder: every output exists, parses, and agrees with the stored trials."""

from __future__ import annotations

import csv
import json

import optuna
import pytest
from tests.study.study_toy import ToyObjective, ToyRunners, ToySpace

from bitscout.evaluation import RunnerEvaluator
from bitscout.report import write_plots
from bitscout.study import SearchResult, run_search

optuna.logging.set_verbosity(optuna.logging.WARNING)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    space = ToySpace({"fc1": (2, 3, 4, 5, 6, 8), "fc2": (2, 4, 8), "fc3": (3, 5)})
    bad = (("fc1", 2), ("fc2", 2), ("fc3", 3))
    result = run_search(
        space,
        optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
        RunnerEvaluator(ToyRunners(fail_on=[bad]), ToyObjective()),
        out_dir=out,
        n_trials=25,
        progress=False,
        plot=write_plots,
    )
    return out, result


def test_every_output_exists_and_parses(finished_run):
    out, result = finished_run
    for name in ("study.journal", "log.json", "best.json", "trials.csv", "objective.png", "pareto_average_bitwidth.png", "best_widths.png"):
        assert (out / name).is_file(), name
    for name in ("objective.png", "pareto_average_bitwidth.png", "best_widths.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, name
    assert set(result.outputs) >= {"log", "best", "csv", "objective_plot", "widths_plot"}

    log = json.loads((out / "log.json").read_text())
    assert [r["number"] for r in log] == list(range(25))
    assert set(log[0]) >= {
        "number", "state", "values", "software_metrics", "hardware_metrics",
        "scaled_metrics", "sampled_config", "duration_s", "duplicate_of", "error",
    }
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 25
    for row, rec in zip(rows, log):
        assert int(row["number"]) == rec["number"] and row["state"] == rec["state"]
        if rec["state"] == "COMPLETE":
            assert float(row["value.objective"]) == rec["values"][0]
            assert float(row["accuracy"]) == rec["software_metrics"]["accuracy"]
            assert int(row["fc1.weight_width"]) == rec["sampled_config"]["fc1"]["weight_width"]


def test_reported_best_is_the_true_best_of_the_logged_trials(finished_run):
    out, result = finished_run
    log = json.loads((out / "log.json").read_text())
    complete = [r for r in log if r["state"] == "COMPLETE"]
    top = max(r["values"][0] for r in complete)
    best = json.loads((out / "best.json").read_text())["best"]
    assert best["values"][0] == top == result.best.values[0]
    assert best["number"] == min(r["number"] for r in complete if r["values"][0] == top)
    # and the value is what the objective gives for its metrics
    assert best["values"][0] == pytest.approx(best["software_metrics"]["accuracy"] - 0.01 * best["hardware_metrics"]["average_bitwidth"], abs=1e-12)


def test_saved_result_reloads_identically(finished_run):
    out, result = finished_run
    loaded = SearchResult.load(out)
    assert loaded.trials == result.trials
    assert loaded.directions == result.directions == ["maximize"]
    assert (loaded.n_unique, loaded.n_duplicates, loaded.n_failed) == (result.n_unique, result.n_duplicates, result.n_failed)
    assert loaded.best == result.best
    assert result.n_unique + result.n_duplicates + result.n_failed == 25


def test_load_of_a_folder_without_a_run_says_so(tmp_path):
    from bitscout.errors import SearchError

    with pytest.raises(SearchError, match="log.json does not exist"):
        SearchResult.load(tmp_path)


@pytest.mark.parametrize(
    "items",
    [[], [{}], [{"a": [1, 2, {"b": "two\nlines"}], "n": float("nan"), "c": {}}], [{"a": 1}, [], 3, "s", None]],
)
def test_log_written_item_by_item_is_the_text_of_the_whole_list(tmp_path, items):
    from bitscout.study._records import _write_json, _write_json_list

    _write_json(tmp_path / "whole.json", items)
    _write_json_list(tmp_path / "items.json", iter(items))
    assert (tmp_path / "items.json").read_text() == (tmp_path / "whole.json").read_text()


def test_csv_rows_are_those_of_the_records(finished_run):
    """trials.csv is written row by row (two passes): each row is its record's."""
    out, result = finished_run
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["number"]) for r in rows] == [t.number for t in result.trials]
    for row, t in zip(rows, result.trials):
        assert row["state"] == t.state
        for name, value in t.software_metrics.items():
            assert float(row[name]) == value
        for layer, cfg in t.sampled_config.items():
            if isinstance(cfg, dict):
                assert all(row[f"{layer}.{k}"] == str(v) for k, v in cfg.items())
