"""Weight-to-grid distance: how far latent weights sit from a quantisation grid.

For each linear weight row, the scale is the quantiser's (absmax / qmax) and the
distance of each weight is |w/s - round(w/s)|, in grid steps: 0 on the grid,
0.5 half-way between two levels, 0.25 in expectation for weights spread
uniformly across steps. Reported as a mean per layer and over all weights.
"""
from __future__ import annotations

import torch

from .quant import SUPPORTED_BITS, row_scale

# Every quantisation grid the pipeline knows. The training job probes its pre-warmdown weights
# against all of them, so the grid an analysis compares (`probe.grid_bits`) is chosen when the
# tables are built and changing it re-trains nothing.
PROBE_GRIDS = tuple(b for b in SUPPORTED_BITS if b < 16)


def grid_distance(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-element distance to the nearest grid level, in units of the row's step."""
    u = w / row_scale(w, bits)
    return (u - torch.round(u)).abs()


def probe_weights(state: dict[str, torch.Tensor], bits: int) -> dict:
    """Mean grid distance per quantised layer and overall (weighted by element count)."""
    layers, total, count = {}, 0.0, 0
    for name, w in state.items():
        if not (name.startswith("blocks.") and w.ndim == 2):
            continue  # only the fake-quantised Linear weights
        # Zero-initialised rows that never moved sit trivially on the grid; leave them out.
        rows = w.float()[w.float().abs().amax(dim=1) > 0]
        if rows.numel() == 0:
            continue
        d = grid_distance(rows, bits)
        layers[name] = float(d.mean())
        total += float(d.sum())
        count += d.numel()
    return {"grid_bits": bits, "layers": layers, "mean_distance": total / count if count else float("nan"),
            "n_weights": count}


def probe_checkpoint(path: str) -> dict:
    """The probe of one run: its pre-warmdown checkpoint's distance to each grid in PROBE_GRIDS."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return {"run_id": ckpt["run_id"], "run_bits": ckpt["bits"], "size": ckpt["size"],
            "grids": {str(b): probe_weights(ckpt["model"], b) for b in PROBE_GRIDS}}
