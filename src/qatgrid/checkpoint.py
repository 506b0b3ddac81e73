"""Checkpoint files: resumable training state (save, load, checksum, rotation, clearing) and the
weights a finished run keeps.

The state of a run in flight is last.pt plus a sha256 sidecar, with the previous one kept as
prev.pt; a truncated or corrupt file is detected by its checksum and never loaded."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch

from .io import atomic_path, sha256_file
from .runfiles import PREVIOUS_STATE_FILE, STATE_FILE
from .storage import payload_bytes

log = logging.getLogger("qatgrid.train")


def sidecar(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".sha256")


def save_checkpoint(path: Path, payload: dict) -> None:
    """Atomic torch.save plus a sha256 sidecar used to detect truncated files. A state that would
    not fit stops with qatgrid.storage.DiskFull before any byte is written."""
    with atomic_path(path, needed=payload_bytes(payload)) as tmp:
        torch.save(payload, tmp)
    with atomic_path(sidecar(path)) as tmp:
        tmp.write_text(sha256_file(path) + "\n")


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint if present and intact; None (and a warning) otherwise."""
    if not path.exists():
        return None
    if not sidecar(path).exists() or sidecar(path).read_text().strip() != sha256_file(path):
        log.warning("checkpoint %s fails its checksum; ignoring it", path)
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def rotate(state_dir: Path) -> None:
    """Keep the previous checkpoint as prev.pt, so a corrupt last.pt still leaves one to resume from.

    prev.pt is a hard link (a copy where links are not supported) of last.pt, never a rename: at
    every instant one intact pair of checkpoint and checksum exists, whenever a kill lands. (Renaming
    the two files one after the other left a window with neither pair intact.)"""
    last, prev = state_dir / STATE_FILE, state_dir / PREVIOUS_STATE_FILE
    if not last.exists():
        return
    for path in (sidecar(prev), prev):
        path.unlink(missing_ok=True)
    for src, dst in ((last, prev), (sidecar(last), sidecar(prev))):
        if src.exists():
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


def save_state(state_dir: Path, payload: dict) -> None:
    """Rotate, then write the new last.pt."""
    state_dir.mkdir(parents=True, exist_ok=True)
    rotate(state_dir)
    save_checkpoint(state_dir / STATE_FILE, payload)


def load_state(state_dir: Path) -> dict | None:
    """The newest intact checkpoint of last.pt / prev.pt, saying when it falls back."""
    last, prev = state_dir / STATE_FILE, state_dir / PREVIOUS_STATE_FILE
    state = load_checkpoint(last)
    if state is None and last.exists():
        state = load_checkpoint(prev)
        if state is not None:
            log.warning("falling back to the previous checkpoint %s (step %d)", prev, state["step"])
    elif state is None:
        state = load_checkpoint(prev)
    return state


def clear_state(state_dir: str | Path) -> None:
    """Drop resumable state once a run's outputs are in place."""
    for name in (STATE_FILE, PREVIOUS_STATE_FILE):
        for path in (Path(state_dir) / name, sidecar(Path(state_dir) / name)):
            path.unlink(missing_ok=True)


def model_state(model: torch.nn.Module) -> dict:
    """A detached CPU copy of the weights, one copy whatever the device (on CPU a fresh tensor too,
    so later steps cannot change it)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def save_weights(path: Path, weights: dict, info: dict) -> None:
    """A finished run's weights (pre-warmdown or final) with what the probe needs to read them."""
    with atomic_path(path, needed=payload_bytes(weights)) as tmp:
        torch.save({"model": weights, **info}, tmp)
