"""docs/your_model.md, run as written: its files are written to a fresh folder and its
commands run there, each in its own process (as a user would run them)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "your_model.md"

pytestmark = pytest.mark.slow

_BLOCK = re.compile(r"<!-- (file: (?P<name>\S+)|run) -->\n```\w*\n(?P<body>.*?)\n```", re.S)


def _doc_parts() -> tuple[dict[str, str], list[str]]:
    files: dict[str, str] = {}
    commands: list[str] = []
    for match in _BLOCK.finditer(DOC.read_text()):
        if match["name"]:
            files[match["name"]] = match["body"] + "\n"
        else:
            commands += [line for line in match["body"].splitlines() if line.strip()]
    return files, commands


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    assert words[0] == "bitscout", command
    return [sys.executable, "-m", "bitscout", *words[1:]]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _layers(run: Path) -> set[str]:
    records = json.loads((run / "log.json").read_text())
    return set(records[0]["sampled_config"])


def test_the_doc_runs_as_written(tmp_path: Path) -> None:
    files, commands = _doc_parts()
    assert {"mymodels.py", "train.py", "cnn.toml", "transformer.toml", "hf.toml", "mymetrics.py"} <= set(files)
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    outputs = {}
    for command in commands:
        done = _run(_argv(command), tmp_path)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs[command] = done

    trained = outputs["python train.py"].stdout
    for name in ("ResCNN", "TinyTransformer", "HFStyle"):
        accuracy = float(re.search(rf"{name}: validation accuracy (\S+)", trained)[1])
        assert accuracy > 0.3, trained  # 10 classes: chance is 0.1

    assert "warning:" not in outputs["bitscout check cnn.toml"].stderr
    assert "# ok:" in outputs["bitscout check cnn.toml"].stdout
    cnn_layers = {"stem_0", "block_conv1", "block_conv2", "fc"}
    for run in ("runs/cnn", "runs/cnn-workers"):
        assert cnn_layers <= _layers(tmp_path / run)
        assert len(json.loads((tmp_path / run / "log.json").read_text())) == 4
        exported = list((tmp_path / run / "export").glob("trial_*"))
        assert len(exported) == 1 and any(exported[0].iterdir())

    layers = _layers(tmp_path / "runs/transformer")
    for i in range(2):
        for part in ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj",
                     "linear1", "linear2"):
            assert f"encoder_layers_{i}_{part}" in layers
    assert "warning:" not in outputs["bitscout check transformer.toml"].stderr

    hf = outputs["bitscout search hf.toml --out runs/hf --workers 2 --no-progress"]
    records = json.loads((tmp_path / "runs/hf/log.json").read_text())
    assert len(records) == 4
    assert all(0.0 <= r["software_metrics"]["top2_accuracy"] <= 1.0 for r in records)
    assert all(r["software_metrics"]["top2_accuracy"] >= r["software_metrics"]["accuracy"] for r in records)
    assert {"query", "key", "value", "classifier"} <= _layers(tmp_path / "runs/hf")
    # With --workers the model is traced in the worker processes: each one's log warns.
    for log in ("worker-0.log", "worker-1.log"):
        text = (tmp_path / "runs/hf/workers" / log).read_text()
        assert "warning: HFStyle:" in text and "embed (Embedding, 272)" in text
    assert hf.returncode == 0

    # Without trace_into, the transformer's encoder is reported as left in float.
    toml = (tmp_path / "transformer.toml").read_text().replace('trace_into = ["TransformerEncoder"]\n', "")
    (tmp_path / "declined.toml").write_text(toml)
    declined = _run(_argv("bitscout check declined.toml"), tmp_path)
    assert declined.returncode == 0, declined.stderr
    share = re.search(r"warning: TinyTransformer: (\S+)% of the model's ([\d,]+) parameters \(([\d,]+)\)", declined.stderr)
    assert share is not None, declined.stderr
    total, held = int(share[2].replace(",", "")), int(share[3].replace(",", ""))
    assert float(share[1]) == pytest.approx(100 * held / total, abs=0.05) and held / total > 0.9
    assert "encoder (TransformerEncoder" in declined.stderr and 'trace_into = ["TransformerEncoder"]' in declined.stderr
