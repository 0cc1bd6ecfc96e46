"""The README's two set-up commands are what CI and the demo really run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _make_recipe(target: str) -> list[str]:
    """The commands `make -n TARGET` would run (dry run: nothing is executed)."""
    # Run as a top-level make even when the suite itself runs under `make test`.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target],
        cwd=ROOT, capture_output=True, text=True, check=True, env=env,
    ).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_readme_names_the_two_commands_first() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block is not None, "README.md has no bash block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    runs = [line.strip() for line in ci if line.strip() and not line.lstrip().startswith("#")]
    assert any(re.fullmatch(r"make test( < /dev/null)?", line) for line in runs), runs


def test_make_test_installs_dev_extras_and_runs_pytest() -> None:
    recipe = _make_recipe("test")
    assert any("-m venv .venv" in line for line in recipe)
    assert any("pip install" in line and ".[dev]" in line for line in recipe)
    assert recipe[-1] == "bash scripts/test.sh"
    assert "-m pytest" in (ROOT / "scripts" / "test.sh").read_text()


def test_make_demo_trains_if_missing_then_searches_the_default_config() -> None:
    recipe = _make_recipe("demo")
    assert any("-m venv .venv" in line for line in recipe)
    assert recipe[-2:] == [
        ".venv/bin/bitscout train configs/digits.toml --if-missing",
        ".venv/bin/bitscout search configs/digits.toml",
    ]
    assert (ROOT / "configs" / "digits.toml").is_file()
