"""Bit-exactness against hls4ml's C simulation (compiles C++: a few projects, in parallel)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

pytest.importorskip("hls4ml")

from bitscout.cli import main  # noqa: E402
from bitscout.export import HLSProject, VerifyReport, export_model, verify  # noqa: E402
from bitscout.study import TrialRecord  # noqa: E402

from tests.export._helpers import (  # noqa: E402
    AUTO8,
    MLP_CONFIGS,
    bn_mlp,
    jsc_tiny,
    lq,
    mlp,
    sampled,
    synthetic,
    write_run,
)

pytestmark = pytest.mark.hls4ml

_PROJECTS = [(name, "AP_RND_CONV", "AP_SAT") for name in MLP_CONFIGS] + [("b", "AP_TRN", "AP_WRAP")]


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], VerifyReport]:
    """Export the MLP under each config (and config b with truncation and wrap-around),
    compile the projects two at a time, and verify each on the 600 synthetic samples."""
    data = synthetic()
    x = torch.cat([data.train.x, data.val.x, data.test.x])
    y = torch.cat([data.train.y, data.val.y, data.test.y])
    model = mlp()
    root = tmp_path_factory.mktemp("hls")
    projects: dict[tuple[str, str], HLSProject] = {}
    for name, rounding, saturation in _PROJECTS:
        result = export_model(model, MLP_CONFIGS[name], root / f"{name}_{rounding}",
                              example_input=x[:64], format="hls4ml",
                              rounding=rounding, saturation=saturation)
        assert result.hls is not None
        projects[(name, rounding)] = result.hls
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(HLSProject.compile, projects.values()))
    return {key: verify(model, MLP_CONFIGS[key[0]], project, x, y) for key, project in projects.items()}


@pytest.mark.parametrize("name", sorted(MLP_CONFIGS))
def test_mlp_is_bit_exact_against_the_c_simulation(reports, name: str) -> None:
    report = reports[(name, "AP_RND_CONV")]
    assert report.samples == 600
    assert report.notes == ()  # exact by construction
    assert report.max_abs_diff == 0.0 and report.differing_samples == 0
    assert report.identical_top1 == 1.0
    assert report.accuracy_bitscout == report.accuracy_hls4ml
    assert report.agree


def test_a_wrong_rounding_and_overflow_mode_is_detected(reports) -> None:
    report = reports[("b", "AP_TRN")]
    assert not report.agree
    assert report.max_abs_diff > 0 and report.differing_samples > 0


def test_cli_verify_is_bit_exact_on_jsc_tiny(tmp_path: Path, capsys) -> None:
    config = {"seq_blocks_1": lq((5, 3)), "seq_blocks_2": lq((2, 1), (3, 4), (4, -1)),
              "seq_blocks_3": lq((8, 4))}
    trial = TrialRecord(number=0, state="COMPLETE", values=(0.5,),
                        software_metrics={"accuracy": 0.5}, sampled_config=sampled(config))
    run = write_run(tmp_path / "run", "jsc-tiny", jsc_tiny(), [trial], ["maximize"])
    code = main(["verify", str(run), "--samples", "5000", "--split", "train"])
    printed = capsys.readouterr().out
    assert "BatchNorm" in printed  # said up front: not exact by construction
    assert "samples compared:        360" in printed  # the whole train split (fewer than 5000)
    assert "max |output difference|: 0 " in printed and "identical top-1:         100.0000%" in printed
    assert code == 0


def test_a_moved_project_compiles_and_verifies_where_it_lies(tmp_path: Path) -> None:
    import shutil

    data = synthetic()
    model = mlp()
    name = sorted(MLP_CONFIGS)[0]
    first = export_model(model, MLP_CONFIGS[name], tmp_path / "first", example_input=data.test.x[:64],
                         format="hls4ml")
    assert first.hls is not None
    moved = tmp_path / "moved"
    shutil.copytree(first.hls.path, moved)
    shutil.rmtree(tmp_path / "first")  # its hls4ml_config.yml still names this folder
    project = HLSProject.load(moved)
    report = verify(model, MLP_CONFIGS[name], project, data.test.x, data.test.y)
    assert report.agree and report.samples == len(data.test)
    assert not (tmp_path / "first").exists()  # nothing was compiled in the original place
    assert any(moved.rglob("*.so"))


def test_cli_verify_compares_every_sample_of_the_split_by_default(tmp_path: Path, capsys) -> None:
    config = {"seq_blocks_1": lq((5, 3)), "seq_blocks_2": lq((2, 1), (3, 4), (4, -1)),
              "seq_blocks_3": lq((8, 4))}
    trial = TrialRecord(number=0, state="COMPLETE", values=(0.5,),
                        software_metrics={"accuracy": 0.5}, sampled_config=sampled(config))
    run = write_run(tmp_path / "run", "jsc-tiny", jsc_tiny(), [trial], ["maximize"])
    assert main(["verify", str(run), "--split", "train"]) == 0
    assert f"samples compared:        {len(synthetic().train)}" in capsys.readouterr().out


def test_cli_verify_is_bit_exact_on_an_auto_mlp_with_batchnorm_folded(tmp_path: Path, capsys) -> None:
    """The search-side path end to end: the run's sampled config says "auto", export
    folds BatchNorm, calibrates the inputs, resolves every frac width, and the C
    simulation agrees with bitscout on every output bit."""
    import json

    relu = {"name": "integer", "data_in_width": 8, "data_in_frac_width": "auto"}
    config = {"fc1": AUTO8, "relu1": relu, "fc2": AUTO8, "relu2": relu, "fc3": AUTO8}
    trial = TrialRecord(number=0, state="COMPLETE", values=(0.5,), software_metrics={"accuracy": 0.5},
                        sampled_config=config)
    options = "[model_options]\nhidden = [32, 16]\nbatch_norm = true\n"
    run = write_run(tmp_path / "run", "mlp", bn_mlp(), [trial], ["maximize"], options=options)
    code = main(["verify", str(run), "--samples", "5000", "--split", "train"])
    printed = capsys.readouterr().out
    assert "bit-exact by construction" in printed  # no BatchNorm note: it was folded away
    assert "samples compared:        360" in printed
    assert "max |output difference|: 0 " in printed and "identical top-1:         100.0000%" in printed
    assert code == 0
    meta = json.loads((run / "export" / "trial_0" / "export.json").read_text())
    assert meta["folded_batchnorm"] == {"fc1": "bn1", "fc2": "bn2"}
    assert all(isinstance(meta["config"][n]["data_in_frac_width"], int) for n in config)
    assert not any("bn" in layer for layer in meta["hls4ml"]["types"])
