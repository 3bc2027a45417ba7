r"""Reading checkpoints: the shipped ones (``load_pretrained("mnist-ddpm")`` and friends) and any exported file.

The files live in ``diffcourse/checkpoints/`` next to ``manifest.json``, which records for
each one its SHA-256, the recipe and exact command that produced it, the number of
parameters, training steps, wall time, device, and the quality measured on the shipped
weights. Loading

1. checks the file's SHA-256 against the manifest (a tampered, truncated or half-downloaded
   file is refused with an error naming it), then
2. reads it with ``torch.load(..., weights_only=True)`` — tensors and plain Python only, so
   a checkpoint can never run code — and
3. rebuilds the network from the stored ``config`` and loads the EMA weights.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .recipes.base import build_model
from .schedules import make_schedule

__all__ = ["CHECKPOINT_DIR", "PretrainedError", "ChecksumError", "available", "manifest", "checkpoint_info", "load_model",
           "sha256", "load_pretrained", "load_export", "network_from_export", "pretrained_schedule"]

CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


class PretrainedError(RuntimeError):
    """A shipped checkpoint is missing, unknown or unreadable."""


class ChecksumError(PretrainedError):
    """A checkpoint's SHA-256 differs from the one in ``manifest.json`` (tampered or truncated file)."""


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(checkpoint_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The parsed ``manifest.json`` (``{"checkpoints": {name: entry}}``)."""
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else CHECKPOINT_DIR
    path = folder / "manifest.json"
    if not path.exists():
        raise PretrainedError(f"{path} is missing: the shipped checkpoints cannot be verified. "
                              "Restore it from the repository (git checkout diffcourse/checkpoints).")
    with open(path) as f:
        return json.load(f)


def available(checkpoint_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the shipped checkpoints."""
    return sorted(manifest(checkpoint_dir)["checkpoints"])


def checkpoint_info(name: str, checkpoint_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The manifest entry of checkpoint ``name`` (recipe, steps, wall time, measured quality …)."""
    entries = manifest(checkpoint_dir)["checkpoints"]
    if name not in entries:
        raise PretrainedError(f"No shipped checkpoint named {name!r}. Available: {', '.join(sorted(entries))}.")
    return entries[name]


def load_export(path: str | os.PathLike, expected_sha256: str | None = None) -> dict[str, Any]:
    """Read an exported checkpoint file (``{"state_dict", "config", "model", …}``) safely.

    With ``expected_sha256`` the file's hash is checked first and a mismatch raises `ChecksumError`.
    The file is read with ``torch.load(weights_only=True)``.
    """
    path = Path(path)
    if not path.exists():
        raise PretrainedError(f"Checkpoint file {path} is missing. Restore it from the repository "
                              "(git checkout diffcourse/checkpoints) or retrain it with the command in manifest.json.")
    if expected_sha256 is not None:
        found = sha256(path)
        if found != expected_sha256:
            raise ChecksumError(
                f"Checkpoint file {path} does not match manifest.json: SHA-256 is {found}, expected {expected_sha256} "
                f"({path.stat().st_size} bytes on disk). The file is corrupt, truncated or was modified. "
                "Restore it with `git checkout -- diffcourse/checkpoints` or retrain it with the command in manifest.json.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types
        raise PretrainedError(f"Could not read checkpoint file {path} with torch.load(weights_only=True): {e}") from e
    if not isinstance(state, dict) or "state_dict" not in state or "config" not in state:
        raise PretrainedError(f"Checkpoint file {path} is not an exported diffcourse checkpoint "
                              "(expected a dict with 'state_dict', 'config' and 'model').")
    return state


def load_pretrained(name: str, device: torch.device | str | None = None, *,
                    checkpoint_dir: str | os.PathLike | None = None, verify: bool = True) -> nn.Module:
    """Load shipped checkpoint ``name`` (e.g. ``"mnist-ddpm"``, ``"mnist-cfg"``, ``"mnist-classifier"``,
    ``"mnist-noisy-classifier"``) as a network in eval mode on ``device`` (default: CPU).

    The SHA-256 is verified against ``manifest.json`` unless ``verify=False``. The manifest
    entry is attached as ``model.pretrained_info``.
    """
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else CHECKPOINT_DIR
    info = checkpoint_info(name, folder)
    state = load_export(folder / info["file"], info["sha256"] if verify else None)
    return network_from_export(state, dict(info), device if device is not None else "cpu")


def network_from_export(state: dict[str, Any], info: dict[str, Any], device: torch.device | str) -> nn.Module:
    """Rebuild the network of an exported checkpoint, frozen and in eval mode, with ``info`` attached."""
    model = build_model(state["model"], state["config"])
    model.load_state_dict(state["state_dict"])
    model.pretrained_info = info
    model.requires_grad_(False)
    return model.to(device).eval()


def load_model(name: str, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A shipped checkpoint by name (hash-verified), or an exported ``.pt`` file by path; returns
    ``(model, metadata)``, the metadata holding at least ``schedule`` (``{"name", "T"}``)."""
    path = Path(name)
    if path.suffix == ".pt" and path.is_file():
        state = load_export(path)
        meta = {k: v for k, v in state.items() if k != "state_dict"}
        settings = state.get("settings", {})
        meta.setdefault("schedule", {"name": settings.get("schedule", "linear"), "T": settings.get("T", 1000)})
        return network_from_export(state, meta, device), meta
    if name not in available():
        raise ValueError(f"--model {name!r} is neither a shipped checkpoint ({', '.join(available())}) "
                         "nor an existing exported .pt file.")
    model = load_pretrained(name, device)
    return model, dict(model.pretrained_info)


def pretrained_schedule(name: str, checkpoint_dir: str | os.PathLike | None = None):
    """The `NoiseSchedule` a shipped diffusion model (or noisy classifier) was trained with."""
    info = checkpoint_info(name, checkpoint_dir)
    sched = info.get("schedule") or {"name": "linear", "T": 1000}
    return make_schedule(sched["name"], sched["T"])
