"""optuna-dashboard (the `dashboard` extra) serves a run's metrics, each as its own attribute."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bitscout.cli import main
from tests.report.test_html import _SEARCH_TOML


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    # A generous timeout: the server reads the journal at its first request, and a loaded
    # machine can take seconds over it (the second request is not retried).
    with urllib.request.urlopen(url, timeout=60) as reply:
        return json.loads(reply.read())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_dashboard_serves_every_metric_of_a_run(tmp_path: Path, capsys) -> None:
    beside = Path(sys.executable).with_name("optuna-dashboard")  # the venv's, also when not on PATH
    dashboard = str(beside) if beside.is_file() else shutil.which("optuna-dashboard")
    if dashboard is None:
        pytest.skip("optuna-dashboard is not installed (pip install -e '.[dashboard]')")
    config = tmp_path / "run.toml"
    config.write_text(_SEARCH_TOML)
    run_dir = tmp_path / "run"
    assert main(["search", str(config), "--out", str(run_dir), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    journal = run_dir / "study.journal"
    assert f"optuna-dashboard {journal}" in printed  # the hint names the command that works

    port = _free_port()
    server = subprocess.Popen(
        [dashboard, str(journal), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                studies = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
                break
            except OSError:
                assert server.poll() is None, "optuna-dashboard exited"
                assert time.monotonic() < deadline, "optuna-dashboard did not answer within 90 s"
                time.sleep(0.5)
        study_id = next(s["study_id"] for s in studies if s["study_name"] == "html")
        trials = _get(f"http://127.0.0.1:{port}/api/studies/{study_id}?after=0")["trials"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = {t["number"]: t for t in json.loads((run_dir / "log.json").read_text())}
    assert len(trials) == len(log) == 3
    for trial in trials:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        record = log[trial["number"]]
        for name, value in {**record["software_metrics"], **record["hardware_metrics"]}.items():
            assert float(attrs[name]) == pytest.approx(value, rel=1e-12)
