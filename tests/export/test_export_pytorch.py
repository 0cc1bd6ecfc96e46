"""Export to PyTorch: weights on their grids, reload, config round trip, run folders."""

from __future__ import annotations

import builtins
import json
import sys
from pathlib import Path

import pytest
import torch

from bitscout.cli import main
from bitscout.config import load_config
from bitscout.errors import ExportError
from bitscout.export import INSTALL_HINT, choose_trial, export_model, export_run, on_grid
from bitscout.graph import trace
from bitscout.models import load_checkpoint
from bitscout.quant import Quantizer, resolve_pass
from bitscout.study import TrialRecord

from tests.export._helpers import MLP_CONFIGS, lq, mlp, sampled, synthetic, write_run


def _quantized_outputs(model: torch.nn.Module, config, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return Quantizer(trace(model, x[:4])).build(config)(x)


def test_weights_are_placed_on_their_grids_and_the_model_is_untouched() -> None:
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = MLP_CONFIGS["a"]
    grid = on_grid(model, config, example_input=synthetic().train.x[:4])
    for name, v in model.state_dict().items():
        assert torch.equal(v, before[name])
    # fc1: weight int4.6 -> codes w * 2^6 are integers in [-8, 7]; bias int4.-1 -> b / 2
    # integers in [-8, 7].
    w_codes = grid.fc1.weight.detach() * 2**6
    assert torch.equal(w_codes, w_codes.round()) and w_codes.min() >= -8 and w_codes.max() <= 7
    b_codes = grid.fc1.bias.detach() / 2
    assert torch.equal(b_codes, b_codes.round()) and b_codes.min() >= -8 and b_codes.max() <= 7
    assert not torch.equal(grid.fc1.weight, model.fc1.weight)


def test_export_and_reload_give_identical_predictions(tmp_path: Path) -> None:
    data = synthetic()
    model, config = mlp(), MLP_CONFIGS["b"]
    result = export_model(
        model, config, tmp_path, example_input=data.train.x[:64],
        metrics={"accuracy": 0.5}, base_config={"model": "mlp", "dataset": "synthetic",
                                                "model_options": {"hidden": [32, 16]}},
    )
    # Plain torch reads the checkpoint as a state dict.
    state = torch.load(result.checkpoint, weights_only=True)
    plain = mlp(seed=1)
    plain.load_state_dict(state)
    reloaded = load_checkpoint(mlp(seed=2), result.checkpoint)
    # The config comes back from quantize.toml, as `bitscout quantize` reads it.
    cfg = load_config(result.config_toml)
    assert cfg.passes.quantize is not None and cfg.passes.quantize.by == "name"
    x = data.val.x
    table = trace(reloaded, x[:4]).table
    assert resolve_pass(cfg.passes.quantize, table) == config
    expected = _quantized_outputs(model, config, x)
    for again in (plain, reloaded):
        assert torch.equal(_quantized_outputs(again, resolve_pass(cfg.passes.quantize, table), x), expected)
    meta = json.loads(result.metadata.read_text())
    assert meta["metrics"] == {"accuracy": 0.5}
    assert meta["config"]["relu1"] == "float"
    assert meta["config"]["fc2"]["bias_frac_width"] == -2


def test_without_hls4ml_the_pytorch_export_works_and_hls4ml_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_hls4ml(name, *args, **kwargs):
        if name == "hls4ml" or name.startswith("hls4ml."):
            raise ImportError("No module named 'hls4ml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "hls4ml", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_hls4ml)
    x = synthetic().train.x[:16]
    with pytest.raises(ExportError) as err:
        export_model(mlp(), MLP_CONFIGS["a"], tmp_path / "h", example_input=x, format="hls4ml")
    assert INSTALL_HINT == "pip install 'bitscout[hls4ml]'"
    assert INSTALL_HINT in str(err.value)
    assert not (tmp_path / "h").exists()
    result = export_model(mlp(), MLP_CONFIGS["a"], tmp_path / "p", example_input=x)
    assert result.checkpoint.is_file() and result.hls is None


def test_a_run_no_trial_of_which_meets_its_constraints_exports_only_a_measured_trial_and_says_so(tmp_path: Path) -> None:
    # user8: `bitscout export` of such a run exported the never-evaluated least-violating
    # trial as "the best trial of the run".
    def over(number: int, bits: float, *, skipped: bool) -> TrialRecord:
        return TrialRecord(
            number=number, state="PRUNED" if skipped else "COMPLETE", values=() if skipped else (0.8,),
            software_metrics={} if skipped else {"accuracy": 0.8}, hardware_metrics={"average_bitwidth": bits},
            sampled_config=sampled(MLP_CONFIGS["a"]), constraints={"average_bitwidth.max": bits - 2.0}, skipped=skipped,
        )

    skipped_only = write_run(tmp_path / "skipped", "mlp", mlp(), [over(0, 3.0, skipped=True)], ["maximize"])
    with pytest.raises(ExportError) as err:
        choose_trial(skipped_only)
    assert str(err.value) == (
        f"no trial of {skipped_only} meets its constraints, and the least-violating one, trial 0, was "
        "never evaluated (skipped as infeasible from its configuration); relax a bound in "
        "[search.strategy.constraints] and search again"
    )
    measured = write_run(tmp_path / "measured", "mlp", mlp(), [over(0, 3.0, skipped=False), over(1, 5.0, skipped=False)], ["maximize"])
    chosen = choose_trial(measured)
    assert chosen.number == 0  # 1 bit over the bound against 3
    assert chosen.reason.startswith("trial 0, the least-violating trial: NO trial of the run meets its constraints")


def _record(number: int, accuracy: float, bits: float, config, state: str = "COMPLETE") -> TrialRecord:
    return TrialRecord(
        number=number, state=state, values=(accuracy, bits) if state == "COMPLETE" else (),
        software_metrics={"accuracy": accuracy}, hardware_metrics={"average_bitwidth": bits},
        sampled_config=sampled(config),
    )


@pytest.fixture(scope="module")
def pareto_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    trials = [
        _record(0, 0.70, 3.0, MLP_CONFIGS["a"]),
        _record(1, 0.90, 7.0, MLP_CONFIGS["b"]),  # the most accurate Pareto member
        _record(2, 0.60, 4.0, MLP_CONFIGS["c"]),  # dominated by trial 0
        _record(3, 0.0, 0.0, MLP_CONFIGS["c"], state="FAIL"),
    ]
    return write_run(tmp_path_factory.mktemp("run"), "mlp", mlp(), trials,
                     ["maximize", "minimize"], "[model_options]\nhidden = [32, 16]\n")


def test_a_pareto_run_exports_its_most_accurate_member_and_says_so(pareto_run: Path) -> None:
    chosen = choose_trial(pareto_run)
    assert chosen.number == 1
    assert "most accurate member of the Pareto set" in chosen.reason and "0, 1" in chosen.reason
    with pytest.raises(ExportError, match="FAIL"):
        choose_trial(pareto_run, 3)
    with pytest.raises(ExportError, match=r"no trial 9.*\[0, 1, 2\]"):
        choose_trial(pareto_run, 9)


def test_cli_export_writes_the_chosen_trial(pareto_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "exp"
    assert main(["export", str(pareto_run), "--trial", "0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trial 0 (asked for)" in printed
    meta = json.loads((out / "export.json").read_text())
    assert meta["trial"] == 0 and meta["metrics"] == {"accuracy": 0.7, "average_bitwidth": 3.0}
    # The exported checkpoint holds the run's float model with trial 0's weights on the grid.
    state = torch.load(out / "model.pt", weights_only=True)
    w = state["fc1.weight"] * 2**6  # trial 0 = config a: fc1 weight int4.6
    assert torch.equal(w, w.round())
    cfg = load_config(out / "quantize.toml")
    assert cfg.model == "mlp" and cfg.search is None
    assert cfg.load_name is not None and Path(cfg.load_name) == (out / "model.pt").resolve()


def test_a_run_searched_on_cuda_exports_on_the_cpu(tmp_path: Path) -> None:
    # A search run on a GPU machine records accelerator = "cuda"; exporting it (here, or
    # on any machine) must not need CUDA: the export runs on the CPU.
    trials = [_record(0, 0.70, 3.0, MLP_CONFIGS["a"])]
    run = write_run(tmp_path / "run", "mlp", mlp(), trials, ["maximize", "minimize"], "[model_options]\nhidden = [32, 16]\n")
    config = run / "config.toml"
    config.write_text(config.read_text().replace('accelerator = "cpu"', 'accelerator = "cuda"'))
    result, chosen = export_run(run, out=tmp_path / "exp")
    assert chosen.number == 0
    state = torch.load(result.checkpoint, weights_only=True)
    assert all(t.device.type == "cpu" for t in state.values())
    w = state["fc1.weight"] * 2**6  # config a: fc1 weight int4.6
    assert torch.equal(w, w.round())


class _Nested(torch.nn.Module):
    """Layers inside a Sequential: torch.fx names their nodes f_0, f_2 (module paths f.0, f.2)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.f = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


def test_checkpoint_of_a_traced_model_takes_the_user_models_parameter_names(tmp_path: Path) -> None:
    # A run exports the traced module (what the search evaluated); its model.pt used to
    # hold f_0.weight, which the user's model (and `bitscout quantize quantize.toml`)
    # could not load.
    model, x = _Nested(), synthetic().train.x[:64]
    traced = trace(model, x[:4])
    assert "f_0.weight" in traced.gm.state_dict()
    config = {name: MLP_CONFIGS["a"]["fc1"] for name in ("f_0", "f_2")}
    result = export_model(traced.gm, config, tmp_path, example_input=x, names_from=model)
    state = torch.load(result.checkpoint, weights_only=True)
    assert list(state) == ["f.0.weight", "f.0.bias", "f.2.weight", "f.2.bias"]
    fresh = _Nested()
    fresh.load_state_dict(state)
    assert torch.equal(state["f.0.weight"], on_grid(model, {"f_0": config["f_0"]}, traced=traced).f[0].weight)
    expected = _quantized_outputs(model, config, x)
    assert torch.equal(_quantized_outputs(fresh, config, x), expected)


def test_export_into_the_checkpoints_folder_does_not_write_over_it(tmp_path: Path) -> None:
    from bitscout.errors import ConfigError

    trials = [_record(0, 0.70, 3.0, MLP_CONFIGS["a"])]
    run = write_run(tmp_path / "run", "mlp", mlp(), trials, ["maximize", "minimize"],
                    "[model_options]\nhidden = [32, 16]\n")
    user = tmp_path / "mine"
    user.mkdir()
    ckpt = user / "model.pt"  # the user's float checkpoint is called what export writes
    torch.save(mlp().state_dict(), ckpt)
    config = (run / "config.toml").read_text().replace(str(run / "float.pt"), str(ckpt))
    (run / "config.toml").write_text(config)
    before = ckpt.read_bytes()
    with pytest.raises(ConfigError, match=r"would write model.pt in .*mine over the checkpoint \(load_name\)"):
        export_run(run, out=user)
    assert ckpt.read_bytes() == before and sorted(p.name for p in user.iterdir()) == ["model.pt"]


def test_a_run_folder_whose_best_json_train_wrote_is_one_error_not_a_traceback(tmp_path: Path, capsys) -> None:
    # user8: `bitscout train --out RUN` after a search there left train's best.json;
    # export, verify and report then failed with KeyError: 'directions'.
    run = write_run(tmp_path / "run", "mlp", mlp(), [_record(0, 0.9, 4.0, MLP_CONFIGS["a"])], ["maximize", "minimize"])
    (run / "best.json").write_text(json.dumps({"checkpoint": str(run / "best.pt"), "best_epoch": 3, "history": []}))
    for command in (["export", str(run)], ["verify", str(run)], ["report", str(run)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(
            f"error: run folder {run}: {run / 'best.json'} was not written by a bitscout search (it "
            "holds the metrics `bitscout train` saved with its checkpoint)"
        ), command


class AttnNet(torch.nn.Module):
    """16 features as 4 tokens of 4, one nn.MultiheadAttention (packed in_proj_weight)."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(4, 8)
        self.attn = torch.nn.MultiheadAttention(8, num_heads=2, batch_first=True)
        self.head = torch.nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x.reshape(-1, 4, 4))
        return self.head(self.attn(h, h, h)[0].mean(1))


def test_a_trace_into_run_exports_weights_the_users_own_model_loads(tmp_path: Path, monkeypatch) -> None:
    # user8: with trace_into = ["MultiheadAttention"], model.pt held the twin's
    # attn.q_proj/k_proj/v_proj keys: neither the user's model nor `bitscout quantize
    # quantize.toml` could load it.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    torch.manual_seed(0)
    model = AttnNet(classes=synthetic().info.num_classes).eval()
    weights = {"attn_q_proj": lq((8, 4), (3, 2), (8, 4)), "attn_k_proj": lq((8, 4), (4, 2), (8, 4)),
               "attn_v_proj": lq((8, 4), (2, 1), (8, 4))}
    record = TrialRecord(number=0, state="COMPLETE", values=(0.5,), software_metrics={"accuracy": 0.5},
                         sampled_config=sampled(weights))
    run = write_run(tmp_path / "run", "tests.export.test_export_pytorch:AttnNet", model, [record], ["maximize"],
                    'trace_into = ["MultiheadAttention"]\n[model_options]\nclasses = %d\n' % synthetic().info.num_classes)
    result, _ = export_run(run)
    state = torch.load(result.checkpoint, weights_only=True)
    fresh = AttnNet(classes=synthetic().info.num_classes)
    fresh.load_state_dict(state)  # the user's own keys: attn.in_proj_weight, ...
    # in_proj_weight's rows are q, k, v: each on its own grid (frac 2: steps of 1/4, ...).
    q, k, v = state["attn.in_proj_weight"].split(8)
    for rows, (width, frac) in ((q, (3, 2)), (k, (4, 2)), (v, (2, 1))):
        grid = rows * 2**frac
        assert torch.equal(grid, grid.round()) and grid.abs().max() <= 2 ** (width - 1)
    assert torch.equal(state["attn.out_proj.weight"], model.attn.out_proj.weight.detach())  # float: unchanged
    assert not torch.equal(q, model.attn.in_proj_weight.detach()[:8])
    assert main(["quantize", str(result.config_toml)]) == 0


@pytest.mark.parametrize("name", ["model.pt", "quantize.toml", "export.json", "hls4ml_prj"])
def test_an_export_never_replaces_a_file_of_the_users_own(tmp_path: Path, name: str) -> None:
    """A folder holding the user's own model.pt (their weights), quantize.toml, export.json
    or hls4ml_prj is refused before anything is written; an earlier export's is replaced."""
    data = synthetic()
    model, config = mlp(), MLP_CONFIGS["b"]
    own = tmp_path / "theirs"
    own.mkdir()
    path = own / name
    if name == "hls4ml_prj":
        path.mkdir()
        (path / "firmware.cpp").write_text("// the user's\n")
    elif name == "model.pt":
        torch.save(mlp(seed=5).state_dict(), path)
    else:
        path.write_text('{"mine": 1}\n' if name.endswith(".json") else 'model = "mine"\n')
    before = sorted((p.relative_to(own), p.read_bytes() if p.is_file() else b"") for p in own.rglob("*"))
    with pytest.raises(ExportError, match=rf"{name} was not written by bitscout export.*--out DIR"):
        export_model(model, config, own, example_input=data.train.x[:64])
    assert sorted((p.relative_to(own), p.read_bytes() if p.is_file() else b"") for p in own.rglob("*")) == before
    # Exporting into a folder an export wrote replaces it, as exporting again should.
    again = tmp_path / "again"
    first = export_model(model, config, again, example_input=data.train.x[:64])
    second = export_model(mlp(seed=3), config, again, example_input=data.train.x[:64])
    assert second.checkpoint == first.checkpoint
    assert not torch.equal(
        torch.load(second.checkpoint, weights_only=True)["fc1.weight"],
        on_grid(model, config, example_input=data.train.x[:4]).state_dict()["fc1.weight"],
    )


class _RowsGRU(torch.nn.Module):
    """8 rows of 8 features through a GRU, then a linear head (user9's digits model)."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = torch.nn.GRU(8, 6, batch_first=True)
        self.head = torch.nn.Linear(6, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_an_hls4ml_export_of_a_layer_hls4ml_cannot_take_writes_nothing(tmp_path: Path) -> None:
    # user9: the GRU was refused after model.pt and quantize.toml were written, and the
    # float-layers warning came again, naming "GraphModule".
    import warnings

    pytest.importorskip("hls4ml")
    torch.manual_seed(0)
    example = torch.randn(4, 8, 8)
    gm = trace(_RowsGRU().eval(), example, warn=False).gm
    config = {"head": lq((8, 4), (8, 4), (8, 4))}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the traced module is not warned about again
        with pytest.raises(ExportError) as caught:
            export_model(gm, config, tmp_path / "out", example_input=example, format="hls4ml")
    assert str(caught.value).startswith("node 'rnn' (GRU) cannot be exported to hls4ml by bitscout")
    assert not (tmp_path / "out").exists()


def test_an_export_that_fails_half_way_takes_back_the_files_it_created(tmp_path: Path, monkeypatch) -> None:
    # user9: a failure inside the hls4ml build left model.pt and quantize.toml without an
    # export.json, and every later export into that folder was refused as not its own.
    import bitscout.export._pytorch as pytorch_export

    pytest.importorskip("hls4ml")

    def fails(*args, **kwargs):
        raise ExportError("hls4ml gave up")

    monkeypatch.setattr(pytorch_export, "build_hls_project", fails)
    model = mlp(0)
    example = synthetic().val.x[:8]
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="hls4ml gave up"):
        export_model(model, MLP_CONFIGS["a"], out, example_input=example, format="hls4ml")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    monkeypatch.undo()
    result = export_model(model, MLP_CONFIGS["a"], out, example_input=example)  # not refused
    assert result.checkpoint.is_file()


def test_verify_of_a_model_hls4ml_cannot_take_says_it_cannot_be_verified(tmp_path: Path, monkeypatch) -> None:
    # user9: `bitscout verify` of a GRU run answered "Export it with --format pytorch
    # instead", which is no way to verify it.
    import bitscout.export._run as run_module
    from bitscout.export import verify_run
    from bitscout.export._types import PYTORCH_INSTEAD

    def refuses(*args, **kwargs):
        raise ExportError(f"node 'rnn' (GRU) cannot be exported to hls4ml by bitscout. {PYTORCH_INSTEAD}")

    monkeypatch.setattr(run_module, "choose_trial", lambda run_dir, trial: None)
    monkeypatch.setattr(run_module, "_load", lambda run_dir: (None, {}))
    monkeypatch.setattr(run_module, "_export", refuses)
    with pytest.raises(ExportError) as caught:
        verify_run(tmp_path)
    assert str(caught.value) == (
        "node 'rnn' (GRU) cannot be exported to hls4ml by bitscout. verify compares bitscout with "
        "hls4ml's C simulation, so this model cannot be verified; `bitscout export` (PyTorch) still exports it."
    )
