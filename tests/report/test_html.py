"""The HTML report: its content from hand-made records, and a real browser rendering it."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bitscout.report import ReportContext, plot_objective, render_search_html, write_html
from bitscout.study import SearchResult, TrialRecord

_BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")


def _record(number, acc, bits, *, state="COMPLETE", dup=None, frac=4):
    complete = state == "COMPLETE"
    return TrialRecord(
        number=number,
        state=state,
        values=(acc - 0.01 * bits,) if complete else (),
        software_metrics={"accuracy": acc} if complete else {},
        hardware_metrics={"average_bitwidth": bits, "average_bitwidth_ratio": bits / 32} if complete else {},
        scaled_metrics={"accuracy": acc, "average_bitwidth": -0.01 * bits} if complete else {},
        sampled_config={"fc1": {"name": "integer", "weight_width": int(bits), "weight_frac_width": frac}, "fc2": "float"},
        duplicate_of=dup,
        error=None if complete else "RuntimeError: <boom> & more",
    )


def _result():
    trials = [_record(0, 0.70, 8), _record(1, 0.93, 4), _record(2, 0.0, 0, state="FAIL"), _record(3, 0.93, 4, dup=1)]
    return SearchResult(trials=trials, directions=["maximize"], study_name="demo", objective_names=["objective"])


def test_the_report_opens_with_the_best_trial_its_config_and_the_drop_from_float():
    ctx = ReportContext(baseline={"accuracy": 0.95, "average_bitwidth": 32.0}, objective=["+1 x accuracy (maximize)"])
    page = render_search_html(_result(), ctx)
    answer = page[page.index('<div class="answer">') : page.index("</div>")]
    assert "Best trial 1" in answer
    # 0.93 - 0.04 = 0.89 is the objective; the drop from float is float minus trial, as in
    # trials.csv: 0.95 - 0.93 = 0.02 for accuracy and 32 - 4 = 28 for the width.
    assert "objective = 0.89" in answer
    assert "<td>fc1</td><td>integer: weight 4b (4 frac)</td>" in answer
    row = re.search(r"<tr><td>accuracy</td>(.*?)</tr>", answer).group(1)
    assert [c for c in re.findall(r">([^<]*)</td>", row)][:3] == ["0.93", "0.95", "0.02"]
    row = re.search(r"<tr><td>average_bitwidth</td>(.*?)</tr>", answer).group(1)
    assert re.findall(r">([^<]*)</td>", row)[:3] == ["4", "32", "28"]


def test_text_is_escaped_and_every_trial_is_listed():
    page = render_search_html(_result())
    assert "RuntimeError: &lt;boom&gt; &amp; more" in page
    assert "<boom>" not in page
    body = page[page.index("<h2>Trials") :]
    assert len(re.findall(r"<tr><td class=\"num\" data-sort=\"[0-9.]+\">[0-9]+</td><td>(?:COMPLETE|FAIL)", body)) == 4


def test_plots_are_embedded_so_the_page_needs_no_other_file(tmp_path):
    result = _result()
    png = plot_objective(result, tmp_path / "objective.png")
    page = render_search_html(result, ReportContext(images={"objective per trial": png}))
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    assert f"data:image/png;base64,{encoded}" in page
    assert "src=\"http" not in page and "href=\"http" not in page


def test_a_pareto_report_shows_objective_and_raw_metric_columns():
    trials = [
        TrialRecord(number=i, state="COMPLETE", values=(acc, 0.2 * bits), software_metrics={"accuracy": acc},
                    hardware_metrics={"average_bitwidth": bits}, sampled_config={"fc1": "float"})
        for i, (acc, bits) in enumerate([(0.9, 8), (0.8, 4), (0.7, 6)])
    ]
    result = SearchResult(trials=trials, directions=["maximize", "minimize"], objective_names=["accuracy", "average_bitwidth"])
    page = render_search_html(result)
    assert "Pareto set: 2 trials" in page
    assert "<th>average_bitwidth (objective)</th>" in page and "<th>average_bitwidth</th>" in page


def test_a_search_whose_every_trial_was_over_budget_names_the_least_violating_one():
    # Every trial skipped by a hardware budget: PRUNED, no values, never measured.
    trials = [
        TrialRecord(number=i, state="PRUNED", hardware_metrics={"model_size": size},
                    constraints={"model_size.max": size - 300.0}, sampled_config={"fc1": "float"}, skipped=True)
        for i, size in enumerate([900.0, 763.0, 1400.0])
    ]
    result = SearchResult(trials=trials, directions=["maximize"], objective_names=["objective"])
    answer = render_search_html(result)
    answer = answer[answer.index('<div class="answer">') :]
    assert "Best trial 1</b>: not evaluated (skipped: over the budget)" in answer
    assert "No trial meets the constraints" in answer and "model_size.max = 463" in answer


def test_a_feasible_best_says_it_meets_the_constraints():
    trials = [
        TrialRecord(number=0, state="COMPLETE", values=(0.9,), software_metrics={"accuracy": 0.9},
                    constraints={"model_size.max": -12.0}, sampled_config={"fc1": "float"}),
    ]
    result = SearchResult(trials=trials, directions=["maximize"], objective_names=["objective"])
    assert "Meets every constraint" in render_search_html(result)
    assert "Meets every constraint" not in render_search_html(_result())  # no constraints: no line


def test_a_run_without_a_completed_trial_says_so():
    result = SearchResult(trials=[_record(0, 0, 0, state="FAIL")], directions=["maximize"])
    assert "No trial completed" in render_search_html(result)


def _browser() -> str | None:
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def test_a_headless_browser_renders_the_report_without_console_errors(tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no headless Chromium here (scripts/test.sh installs chromium-headless-shell where apt-get can)")
    result = _result()
    png = plot_objective(result, tmp_path / "objective.png")
    path = write_html(render_search_html(result, ReportContext(images={"objective": png}, baseline={"accuracy": 0.95})), tmp_path / "report.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run([browser, *flags, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == []
    assert 'data-ready="1"' in done.stdout  # the page's script ran to its end
    assert "Best trial 1" in done.stdout and "fc1: integer: weight 4b (4 frac)" in done.stdout
    artifacts = Path(os.environ.get("BITSCOUT_TEST_ARTIFACTS", "build/test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "search_report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot.resolve()}", "--window-size=1280,1600", path.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


_SEARCH_TOML = """
model = "mlp"
dataset = "digits"
seed = 0
project = "html"

[search.search_space]
name = "graph/quantize/mixed_precision_ptq"
[search.search_space.setup]
by = "name"
[search.search_space.seed.default.config]
name = ["NA"]
[search.search_space.seed.fc1.config]
name = ["integer"]
data_in_width = [8]
weight_width = [2, 4, 8]
bias_width = [8]

[search.strategy]
name = "brute_force"
[search.strategy.sw_runner.basic_evaluation]
num_samples = 100
[search.strategy.hw_runner.average_bitwidth]
[search.strategy.setup]
n_trials = 3
[search.strategy.metrics]
accuracy.scale = 1.0
average_bitwidth.scale = 0.01
"""


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_search_and_report_write_report_html_with_the_best_trial(tmp_path, capsys):
    from bitscout.cli import main

    config = tmp_path / "html.toml"
    config.write_text(_SEARCH_TOML)
    run_dir = tmp_path / "run"
    assert main(["search", str(config), "--out", str(run_dir), "--no-progress"]) == 0
    assert str(run_dir / "report.html") in capsys.readouterr().out  # listed with the outputs
    best = json.loads((run_dir / "best.json").read_text())["best"]
    page = (run_dir / "report.html").read_text()
    assert f"Best trial {best['number']}" in page
    assert page.count("data:image/png;base64,") >= 2  # objective and widths plots at least
    # The float model was measured once: its accuracy and the best trial's drop from it.
    float_acc = json.loads((run_dir / "best.json").read_text())["baseline"]["metrics"]["software"]["accuracy"]
    acc = best["software_metrics"]["accuracy"]
    row = re.search(r"<tr><td>accuracy</td>(.*?)</tr>", page).group(1)
    assert re.findall(r'data-sort="([^"]*)"', row)[:3] == [repr(acc), repr(float_acc), repr(float_acc - acc)]
    (run_dir / "report.html").unlink()
    assert main(["report", str(run_dir)]) == 0  # rewritten from the study
    assert f"Best trial {best['number']}" in (run_dir / "report.html").read_text()


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_compare_writes_a_report_html_that_a_browser_renders(tmp_path, capsys):
    from bitscout.cli import main

    config = tmp_path / "html.toml"
    config.write_text(_SEARCH_TOML)
    out = tmp_path / "cmp"
    assert main(["compare", str(config), "--strategies", "tpe,brute_force", "--seeds", "2", "--n-trials", "3", "--out", str(out)]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    page = (out / "report.html").read_text()
    assert f"= {comparison['optimum']:.6g}</b>: the exact optimum over 3 configurations" in page
    assert page.count("data:image/png;base64,") == 1 and "<th>seeds reaching the optimum</th>" in page
    browser = _browser()
    if browser is None:
        pytest.skip("no headless Chromium here")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run([browser, *flags, "--dump-dom", (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert [line for line in done.stderr.splitlines() if "CONSOLE" in line] == []
    assert 'data-ready="1"' in done.stdout and "Most reliable" in done.stdout
    artifacts = Path(os.environ.get("BITSCOUT_TEST_ARTIFACTS", "build/test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "comparison_report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot.resolve()}", "--window-size=1280,1400", (out / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=True)
