"""Weight-to-grid distance: how far latent weights sit from a quantisation grid.

For each linear weight row, the scale is the quantiser's (absmax / qmax) and the
distance of each weight is |w/s - round(w/s)|, in grid steps: 0 on the grid,
0.5 half-way between two levels, 0.25 in expectation for weights spread
uniformly across steps. Reported as a mean per layer and over all weights.
"""
from __future__ import annotations

import torch

from .model import is_block_matrix
from .quant import row_scale


def grid_distance(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-element distance to the nearest grid level, in units of the row's step."""
    u = w / row_scale(w, bits)
    return (u - torch.round(u)).abs()


def probe_weights(state: dict[str, torch.Tensor], bits: int) -> dict:
    """Mean grid distance per quantised layer and overall (weighted by element count)."""
    layers, total, count = {}, 0.0, 0
    for name, w in state.items():
        if not is_block_matrix(name, w.ndim):
            continue  # only the fake-quantised Linear weights (not the 2-D resid_mix)
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


def probe_checkpoint(path: str, bits: int) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    result = probe_weights(ckpt["model"], bits)
    result.update(run_id=ckpt["run_id"], run_bits=ckpt["bits"], size=ckpt["size"])
    return result
