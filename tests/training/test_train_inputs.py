"""``bitscout train`` never writes a file it was given as an input, and refuses a bad run
folder before it trains (issue 15, item 2)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from bitscout.cli import main

CONFIG = """\
model = "jsc-toy"
dataset = "synthetic"
batch_size = 32
max_epochs = 2
learning_rate = 0.01
accelerator = "cpu"
seed = 0
project = "syn"
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(CONFIG)
    return tmp_path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_load_starts_from_the_file_and_saves_in_the_run_folder(workdir: Path, capsys) -> None:
    assert main(["train", "c.toml", "--out", "first", "--no-progress"]) == 0
    given = Path("first/best.pt")
    before = _digest(given)
    capsys.readouterr()
    assert main(["train", "c.toml", "--load", str(given), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"starting from the weights of {given} (--load)" in out
    assert _digest(given) == before  # the input is untouched
    saved = Path("runs/syn/train/best.pt")
    assert f"saved checkpoint: {saved}" in out
    # It trained on from the given weights: two more epochs moved them.
    old = torch.load(given, weights_only=True)["state_dict"]
    new = torch.load(saved, weights_only=True)["state_dict"]
    assert old.keys() == new.keys() and any(not torch.equal(old[k], new[k]) for k in old)


def test_train_refuses_to_save_over_its_load_file(workdir: Path, capsys) -> None:
    assert main(["train", "c.toml", "--no-progress"]) == 0
    given = Path("runs/syn/train/best.pt")
    before = _digest(given)
    capsys.readouterr()
    assert main(["train", "c.toml", "--load", str(given), "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"error: --load {given} is the checkpoint train would save to ({given}); train never "
        "writes over its input: pass --out DIR to save the new checkpoint elsewhere\n"
    )
    assert _digest(given) == before


def test_a_corrupt_load_file_is_an_error_and_left_as_it_was(workdir: Path, capsys) -> None:
    corrupt = workdir / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    assert main(["train", "c.toml", "--load", str(corrupt), "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        f"error: cannot read checkpoint {corrupt}: it is not a file written by torch.save (or it is "
        "damaged); save it again with torch.save(model.state_dict(), PATH)\n"
    )
    assert corrupt.read_bytes() == b"not a checkpoint at all"


@pytest.mark.parametrize(
    ("out", "rule"),
    [
        ("afile", "afile is a file, not a folder"),
        ("afile/sub", "afile/sub is under afile, which is a file, not a folder"),
    ],
)
def test_an_out_that_is_or_lies_under_a_file_is_refused_before_training(
    workdir: Path, capsys, out: str, rule: str
) -> None:
    Path("afile").write_text("x")
    assert main(["train", "c.toml", "--out", out, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --out {out}: {rule}; choose another run folder (--out DIR)\n"
    assert "epoch" not in captured.out  # refused before training


def test_an_out_that_cannot_be_created_is_refused_before_training(workdir: Path, capsys) -> None:
    assert main(["train", "c.toml", "--out", "/proc/bitscout-run", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --out /proc/bitscout-run: cannot write in /proc/bitscout-run (")
    assert "epoch" not in captured.out


def test_a_load_that_is_a_folder_is_blamed_on_load(workdir: Path, capsys) -> None:
    Path("ckpts").mkdir()
    assert main(["train", "c.toml", "--load", "ckpts", "--no-progress"]) == 2
    assert capsys.readouterr().err == (
        "error: --load ckpts: is a folder, not a checkpoint file; give the checkpoint file itself\n"
    )


def test_a_missing_load_is_blamed_on_load_not_on_load_name(workdir: Path, capsys) -> None:
    Path("c.toml").write_text(CONFIG + 'load_name = "elsewhere.pt"\n')
    assert main(["train", "c.toml", "--load", "missing.pt", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: --load missing.pt: no such file (relative to the current folder, {workdir}); "
        "give an existing checkpoint file\n"
    )


def test_a_read_only_out_is_refused_before_training(workdir: Path, capsys, monkeypatch) -> None:
    import bitscout.cli._common as common

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # Root writes into read-only folders, so the refusal is simulated where it happens.
    monkeypatch.setattr(common.tempfile, "NamedTemporaryFile", read_only)
    assert main(["train", "c.toml", "--out", "ro", "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "error: --out ro: cannot write in ro (Permission denied); choose a folder you can write "
        "to (--out DIR)\n"
    )
    assert "epoch" not in captured.out


def test_train_refuses_to_save_over_weights_it_did_not_write(workdir: Path, capsys) -> None:
    # user8: `bitscout train cnn.toml` replaced cnn.pt, the config's load_name, which held
    # the user's own trained weights (a plain state dict), with a bitscout checkpoint.
    from bitscout.data import load_dataset
    from bitscout.models import build_model

    torch.save(build_model("jsc-toy", load_dataset("synthetic").info).state_dict(), "mine.pt")
    (workdir / "c.toml").write_text(CONFIG + 'load_name = "mine.pt"\nload_type = "pt"\n')
    before = _digest(Path("mine.pt"))
    assert main(["train", "c.toml", "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: mine.pt (the config's load_name) exists and was not saved by bitscout train (it is "
        "not a checkpoint in bitscout's format), and training would replace it: pass --out DIR to "
        "save elsewhere, or move the file"
    )
    assert _digest(Path("mine.pt")) == before and not Path("mine.json").exists()
    # A checkpoint of an earlier `train` is replaced: training again.
    assert main(["train", "c.toml", "--out", "run", "--no-progress"]) == 0
    first = _digest(Path("run/best.pt"))
    assert main(["train", "c.toml", "--out", "run", "--no-progress", "--seed", "1"]) == 0
    assert _digest(Path("run/best.pt")) != first
    Path("run/best.json").write_text('{"notes": "mine"}')
    assert main(["train", "c.toml", "--out", "run", "--no-progress"]) == 2
    assert "error: run/best.json exists and was not written by bitscout train" in capsys.readouterr().err
    assert Path("run/best.json").read_text() == '{"notes": "mine"}'


def test_a_data_file_without_a_test_split_trains_and_says_so(workdir: Path, capsys) -> None:
    # user8: training on x_train/y_train/x_val/y_val ended, after every epoch, with
    # "error: cannot evaluate on 0 samples" and no checkpoint.
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 16)).astype(np.float32), np.arange(80) % 5
    np.savez("d.npz", x_train=x[:60], y_train=y[:60], x_val=x[60:], y_val=y[60:])
    (workdir / "c.toml").write_text(CONFIG.replace('dataset = "synthetic"', 'dataset = "d.npz"'))
    assert main(["train", "c.toml", "--out", "run", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "); no test split  [" in out
    import json

    saved = json.loads(Path("run/best.json").read_text())
    assert saved["test"] is None and saved["val"]["num_samples"] == 20


def test_the_note_after_train_out_gives_the_options_that_read_the_checkpoint(workdir: Path, capsys) -> None:
    # user9: with load_type = "pt" in the config, the suggested `--load run/best.pt` alone
    # failed (the config's load_type applies to --load); the note now says --load-type too.
    from bitscout.data import load_dataset
    from bitscout.models import build_model

    torch.save(build_model("jsc-toy", load_dataset("synthetic").info).state_dict(), "mine.pt")
    (workdir / "c.toml").write_text(CONFIG + 'load_name = "mine.pt"\nload_type = "pt"\n')
    assert main(["train", "c.toml", "--out", "run", "--no-progress"]) == 0
    note = "note: the config's load_name is mine.pt; pass --load run/best.pt --load-type bitscout to use this checkpoint"
    assert note in capsys.readouterr().err
    argv = ["quantize", "c.toml", "--load", "run/best.pt", "--load-type", "bitscout"]
    (workdir / "c.toml").write_text(
        CONFIG + 'load_name = "mine.pt"\nload_type = "pt"\n[passes.quantize.default.config]\nname = "integer"\n'
        "data_in_width = 8\nweight_width = 8\nbias_width = 8\n"
    )
    assert main(argv) == 0  # the options of the note read it
