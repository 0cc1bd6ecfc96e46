"""What `bitscout search` imports before its first trial (issue 6: start-up under 3 s).

The command line builds the parser of every command at once; none of them may load a
package that only runs after the trials (the report and its plots) or in another command
(compare, export). Each check runs in a fresh interpreter, as a user's command does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bitscout.cli._compare import EXACT_LIMIT_SHOWN
from tests.cli.test_search_cli import TOML  # a 3-trial TPE search of the digits MLP

# Loaded only after the trials (report, plots) or by other commands (compare, export).
NOT_BEFORE_THE_FIRST_TRIAL = ("bitscout.report", "bitscout.compare", "bitscout.export", "matplotlib", "hls4ml")

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(code: str, tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(SRC), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_building_the_parser_of_every_command_loads_none_of_them(tmp_path: Path) -> None:
    loaded = _run(
        textwrap.dedent(
            f"""
            import json, sys
            from bitscout.cli import build_parser
            build_parser()
            print(json.dumps([m for m in {NOT_BEFORE_THE_FIRST_TRIAL!r} if m in sys.modules]))
            """
        ),
        tmp_path,
    )
    assert loaded == []


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_first_trial_of_a_search_runs_before_the_report_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(TOML)
    seen = _run(
        textwrap.dedent(
            f"""
            import json, sys
            from bitscout.cli import main
            from bitscout.study import _search

            at_first_trial = []
            evaluate = _search._Search._evaluate

            def watched(self, *args, **kwargs):
                if not at_first_trial:
                    at_first_trial.append([m for m in {NOT_BEFORE_THE_FIRST_TRIAL!r} if m in sys.modules])
                return evaluate(self, *args, **kwargs)

            _search._Search._evaluate = watched
            status = main(["search", "c.toml", "--out", "run", "--no-progress"])
            print(json.dumps({{"status": status, "first": at_first_trial,
                              "after": [m for m in {NOT_BEFORE_THE_FIRST_TRIAL!r} if m in sys.modules]}}))
            """
        ),
        tmp_path,
    )
    assert seen["status"] == 0
    assert seen["first"] == [[]]
    # The report is still written, after the trials: the lazy import did happen.
    assert "bitscout.report" in seen["after"]
    assert (tmp_path / "run" / "report.html").is_file()


def test_compare_help_shows_the_exact_limit_compare_uses() -> None:
    from bitscout.compare import DEFAULT_EXACT_LIMIT

    assert EXACT_LIMIT_SHOWN == DEFAULT_EXACT_LIMIT
