"""Checkpoints: bitscout's own format, plain state dicts, and PyTorch Lightning files.

Every file is read with ``torch.load(weights_only=True, map_location="cpu")``: a
checkpoint is data, never code to run.

Forms understood (``load_type``, or detected from the content when ``None``):

* ``"bitscout"``: ``{"state_dict": ..., "model": str, "dataset": str, "metrics": {...},
  "bitscout_version": str}``, written by :func:`save_checkpoint`.
* ``"pt"``: a plain ``model.state_dict()`` (MASE's ``load_type = "pt"``).
* ``"pl"``: a PyTorch Lightning ``.ckpt``: weights under ``"state_dict"``, each key
  prefixed ``"model."`` (MASE's ``load_type = "pl"``).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

import bitscout
from bitscout._atomic import atomic_path
from bitscout.errors import CheckpointError

__all__ = ["LOAD_TYPES", "save_checkpoint", "load_checkpoint", "read_state_dict", "is_bitscout_checkpoint"]

LOAD_TYPES = ("bitscout", "pt", "pl")
_LIGHTNING_PREFIX = "model."


def save_checkpoint(model: nn.Module, path: Path, metadata: Mapping[str, Any]) -> None:
    """Write ``model``'s weights in bitscout's format.

    Args:
        model: The model whose ``state_dict`` is saved (moved to the CPU).
        path: Destination file; its folder is created. The file is written whole or not
            at all (written to a temporary name, then renamed).
        metadata: ``"model"``, ``"dataset"``, ``"metrics"`` (a dict of floats) and any
            other plain values to keep next to the weights.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "model": None,
        "dataset": None,
        "metrics": {},
        **dict(metadata),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "bitscout_version": bitscout.__version__,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def is_bitscout_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a checkpoint :func:`save_checkpoint` wrote (False: any other
    file, an unreadable one included). Memory-maps the file: the weights are not read."""
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu", mmap=True)
    except Exception:
        return False
    return _detect_type(obj) == "bitscout"


def _detect_type(obj: Any) -> str:
    if isinstance(obj, Mapping) and "bitscout_version" in obj and "state_dict" in obj:
        return "bitscout"
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        return "pl"
    return "pt"


def read_state_dict(path: Path, load_type: str | None = None) -> tuple[dict[str, torch.Tensor], str]:
    """Read the weights from a checkpoint file.

    Args:
        path: The checkpoint.
        load_type: ``"bitscout"``, ``"pt"`` or ``"pl"``; ``None`` detects it from the content.

    Returns:
        The state dict (Lightning's ``model.`` prefix removed) and the form it was read as.

    Raises:
        CheckpointError: The file is missing, unreadable, or not of the given form.
    """
    path = Path(path)
    if load_type is not None and load_type not in LOAD_TYPES:
        raise CheckpointError(
            f"load_type must be one of {', '.join(LOAD_TYPES)}; got {load_type!r}"
        )
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file; give the file itself")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    damaged = _damaged_zip(path)
    if damaged is not None:
        raise CheckpointError(
            f"checkpoint {path} is truncated or damaged ({damaged}); save or copy it again"
        )
    try:
        obj = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        # weights_only refused a Python object (torch names it "GLOBAL module.Name"): most
        # often a whole model saved with torch.save(model). torch's own message is long,
        # half of it about how to turn the safety off; say what to do instead.
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found is None:
            raise CheckpointError(
                f"cannot read checkpoint {path}: it is not a file written by torch.save "
                "(or it is damaged); save it again with torch.save(model.state_dict(), PATH)"
            ) from exc
        raise CheckpointError(
            f"checkpoint {path} holds a pickled Python object ({found.group(1)}; a whole model "
            "saved with torch.save(model) is one), which bitscout does not load: it reads checkpoints with "
            "weights_only=True and never runs code from one. Where you trust the file, load it "
            "in your own code and save its weights alone: torch.save(model.state_dict(), "
            "'weights.pt'); then use load_name = 'weights.pt', load_type = 'pt'"
        ) from exc
    except Exception as exc:
        reason = _first_line(exc)
        raise CheckpointError(
            f"cannot read checkpoint {path} as a PyTorch file with weights_only=True "
            f"(bitscout never unpickles code from a checkpoint): {reason}"
        ) from exc
    kind = load_type or _detect_type(obj)
    if kind in ("bitscout", "pl"):
        if not isinstance(obj, Mapping) or not isinstance(obj.get("state_dict"), Mapping):
            raise CheckpointError(
                f"checkpoint {path} has no 'state_dict' entry, as load_type {kind!r} needs; "
                "for a plain state dict saved with torch.save(model.state_dict()) use load_type 'pt'"
            )
        state = dict(obj["state_dict"])
        if kind == "pl":
            state = {
                (k[len(_LIGHTNING_PREFIX):] if k.startswith(_LIGHTNING_PREFIX) else k): v
                for k, v in state.items()
            }
    else:
        if not isinstance(obj, Mapping):
            raise CheckpointError(
                f"checkpoint {path} holds a {type(obj).__name__}, not a state dict"
            )
        state = dict(obj)
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        hint = " (is it a Lightning or bitscout checkpoint? try load_type 'pl' or 'bitscout')" if kind == "pt" else ""
        nested = [k for k in not_tensors if _is_state_dict(state[k])]
        if kind != "bitscout" and _detect_type(obj) == "bitscout":
            # `bitscout train` wrote it to the config's load_name, whose load_type says "pt".
            hint = (
                "; it is a checkpoint bitscout saved (bitscout train): set load_type = \"bitscout\" "
                "in the config (or remove load_type: the form is detected), or pass --load-type bitscout"
            )
        elif nested:
            # A training script's own dict, e.g. {"model": ..., "optimizer": ...}.
            hint = (
                f"; its entry {nested[0]!r} holds tensors: save that entry alone, "
                f"torch.save(checkpoint[{nested[0]!r}], 'weights.pt'), and use load_type 'pt'"
            )
        raise CheckpointError(
            f"checkpoint {path} read as {kind!r} has entries that are not tensors: "
            f"{', '.join(map(repr, not_tensors[:5]))}{hint}"
        )
    _check_finite_weights(state, path)
    return state, kind


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(v, torch.Tensor) for v in value.values())
    )


def _damaged_zip(path: Path) -> str | None:
    """Why a file in torch.save's zip form cannot be complete, or None.

    torch.save writes a zip archive; a copy or a write cut short loses the archive's
    directory at its end, and torch then reports an internal miniz error (or
    ``[Errno 22] Invalid argument``). Files that are not zips are left to torch.load.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
        size = path.stat().st_size
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if head != b"PK\x03\x04":
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return f"{size:,} bytes: the zip archive torch.save writes is incomplete"
    return f"{size:,} bytes, entry {bad} fails its checksum" if bad is not None else None


def _check_finite_weights(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """NaN or infinite weights make every trial NaN: refuse them, naming the first one."""
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            continue
        bad = ~torch.isfinite(tensor)
        if bool(bad.any()):
            index = tuple(int(i) for i in torch.nonzero(bad)[0].tolist())
            raise CheckpointError(
                f"checkpoint {path}: {key}{list(index)} is {float(tensor[index])!r} "
                f"({int(bad.sum())} of {tensor.numel()} values of {key} are NaN or infinite); "
                "the weights are broken (a diverged training?): train again or use another checkpoint"
            )


def load_checkpoint(model: nn.Module, path: Path, load_type: str | None = None) -> nn.Module:
    """Load weights from ``path`` into ``model`` (in place) and return it.

    Args:
        model: A model with exactly the checkpoint's parameters and buffers.
        path: A bitscout, plain ``.pt`` or Lightning ``.ckpt`` checkpoint.
        load_type: ``"bitscout"``, ``"pt"``, ``"pl"``, or ``None`` to detect it.

    Raises:
        CheckpointError: The file cannot be read, or it does not fit the model: the
            message names the file, the missing keys, the unexpected keys and every
            shape mismatch.
    """
    state, kind = read_state_dict(path, load_type)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        lines = [f"checkpoint {path} (read as {kind!r}) does not fit the model:"]
        if missing:
            lines.append(f"  missing keys: {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys: {', '.join(unexpected)}")
        if mismatched:
            lines.append(f"  shape mismatches: {'; '.join(mismatched)}")
        lines.append(
            "  Check that the config's model, model_options and dataset are those the "
            "checkpoint was trained with."
        )
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state, strict=True)
    return model
