"""Checkpoints in bitscout's, plain-state-dict and PyTorch Lightning forms."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch

import bitscout
from bitscout.data import DatasetInfo
from bitscout.errors import CheckpointError
from bitscout.models import build_model, load_checkpoint, read_state_dict, save_checkpoint

JSC = DatasetInfo("jsc", (16,), 5, ("g", "q", "w", "z", "t"), "test")


def _trained_like(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("jsc-toy", JSC)
    # Non-default buffers too, so the test proves they are restored.
    model.seq_blocks[0].running_mean.uniform_()
    model.seq_blocks[0].num_batches_tracked.fill_(17)
    return model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_bitscout_format_round_trip(tmp_path: Path) -> None:
    src = _trained_like(1)
    path = tmp_path / "run" / "best.pt"
    save_checkpoint(src, path, {"model": "jsc-toy", "dataset": "jsc", "metrics": {"accuracy": 0.7}})
    raw = torch.load(path, weights_only=True)
    assert raw["model"] == "jsc-toy" and raw["dataset"] == "jsc"
    assert raw["metrics"] == {"accuracy": 0.7} and raw["bitscout_version"] == bitscout.__version__
    dst = _trained_like(2)
    assert not _same(src, dst)
    load_checkpoint(dst, path)
    assert _same(src, dst)
    assert read_state_dict(path)[1] == "bitscout"


def test_plain_state_dict(tmp_path: Path) -> None:
    src = _trained_like(1)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    dst = load_checkpoint(_trained_like(2), tmp_path / "w.pt", "pt")
    assert _same(src, dst)
    assert read_state_dict(tmp_path / "w.pt")[1] == "pt"


def test_lightning_checkpoint(tmp_path: Path) -> None:
    src = _trained_like(1)
    # What PyTorch Lightning writes for MASE's wrapper module (self.model = the network).
    ckpt = {
        "epoch": 9,
        "global_step": 1234,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": collections.OrderedDict((f"model.{k}", v) for k, v in src.state_dict().items()),
        "loops": {"fit_loop": {"state_dict": {}}},
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
    }
    torch.save(ckpt, tmp_path / "best.ckpt")
    dst = load_checkpoint(_trained_like(2), tmp_path / "best.ckpt", "pl")
    assert _same(src, dst)
    assert read_state_dict(tmp_path / "best.ckpt")[1] == "pl"  # detected from the content


def test_mismatch_names_missing_unexpected_and_shapes(tmp_path: Path) -> None:
    state = _trained_like(1).state_dict()
    del state["seq_blocks.5.bias"]
    state["seq_blocks.99.weight"] = torch.zeros(3)
    state["seq_blocks.2.weight"] = torch.zeros(9, 16)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(_trained_like(2), tmp_path / "bad.pt")
    msg = str(err.value)
    assert str(tmp_path / "bad.pt") in msg
    assert "missing keys: seq_blocks.5.bias" in msg
    assert "unexpected keys: seq_blocks.99.weight" in msg
    assert "seq_blocks.2.weight: checkpoint (9, 16) vs model (8, 16)" in msg


def test_wrong_model_for_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    save_checkpoint(build_model("jsc-tiny", JSC), tmp_path / "tiny.pt", {"model": "jsc-tiny"})
    with pytest.raises(CheckpointError, match="missing keys: .*seq_blocks.3.running_mean"):
        load_checkpoint(_trained_like(0), tmp_path / "tiny.pt")


class Payload:
    """Any class: unpickling it would run code, so weights_only loading refuses it."""


def test_code_in_checkpoint_is_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}, "thing": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(_trained_like(0), tmp_path / "evil.pt")


def test_missing_file_and_bad_load_type(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(_trained_like(0), tmp_path / "none.pt")
    torch.save(_trained_like(0).state_dict(), tmp_path / "w.pt")
    with pytest.raises(CheckpointError, match="load_type must be one of bitscout, pt, pl; got 'onnx'"):
        load_checkpoint(_trained_like(0), tmp_path / "w.pt", "onnx")
    with pytest.raises(CheckpointError, match="no 'state_dict' entry"):
        load_checkpoint(_trained_like(0), tmp_path / "w.pt", "pl")


def test_whole_pickled_model_names_its_class_and_how_to_save_weights(tmp_path: Path) -> None:
    # torch.save(model) pickles the class: torch's weights_only message (with terminal
    # colour codes) says how to turn the safety off; bitscout says how to save weights.
    torch.save(_trained_like(0), tmp_path / "whole.pt")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(_trained_like(0), tmp_path / "whole.pt")
    message = str(caught.value)
    assert "holds a pickled Python object (bitscout.models._jsc.JSCToy;" in message
    assert "torch.save(model.state_dict(), 'weights.pt')" in message and "load_type = 'pt'" in message
    assert "\x1b" not in message and "\n" not in message


def test_file_not_written_by_torch_save_is_named_so(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"xxxxx")
    with pytest.raises(CheckpointError, match=r"junk.pt: it is not a file written by torch.save \(or it is damaged\)"):
        load_checkpoint(_trained_like(0), tmp_path / "junk.pt")


def test_training_script_dict_points_at_the_entry_holding_the_weights(tmp_path: Path) -> None:
    torch.save({"model": _trained_like(0).state_dict(), "epoch": torch.tensor(3), "optimizer": {}}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(_trained_like(0), tmp_path / "c.pt")
    assert str(caught.value).endswith(
        "has entries that are not tensors: 'model', 'optimizer'; its entry 'model' holds tensors: "
        "save that entry alone, torch.save(checkpoint['model'], 'weights.pt'), and use load_type 'pt'"
    )


def test_a_bitscout_checkpoint_read_as_pt_says_to_set_load_type_bitscout(tmp_path: Path) -> None:
    # user8: `bitscout train` saved to load_name, and a config with load_type = "pt" was
    # then told to re-save the 'state_dict' entry by hand.
    path = tmp_path / "best.pt"
    save_checkpoint(_trained_like(1), path, {"model": "jsc-toy", "epoch": 3})
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path, "pt")
    message = str(info.value)
    assert message.startswith(f"checkpoint {path} read as 'pt' has entries that are not tensors: 'model'")
    assert 'it is a checkpoint bitscout saved (bitscout train): set load_type = "bitscout"' in message
    assert "save that entry alone" not in message
