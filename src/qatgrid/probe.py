"""Weight-to-grid distance: how far latent weights sit from a quantisation grid.

For each linear weight row, the scale is the quantiser's (absmax / qmax) and the
distance of each weight is |w/s - round(w/s)|, in grid steps: 0 on the grid,
0.5 half-way between two levels, 0.25 in expectation for weights spread
uniformly across steps. Reported as a mean per layer and over all weights for
the configured grid, plus the overall mean distance to every grid the study trains
(`distances`, keyed by label: int8 ... int2, and ternary with BitNet b1.58's
per-tensor absmean step, where weights beyond the outer codes count their
distance to them).
"""

from __future__ import annotations

import torch

from .model import is_block_matrix
from .quant import TERNARY, TERNARY_EPS, row_scale, ternary_scale
from .runs import SUPPORTED_BITS, bits_label

PROBE_GRIDS = tuple(b for b in SUPPORTED_BITS if b != 16)


def grid_distance(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-element distance to the nearest grid level, in units of the grid's step."""
    if bits == TERNARY:
        u = w / (ternary_scale(w) + TERNARY_EPS)
        return (u - torch.clamp(torch.round(u), -1, 1)).abs()
    u = w / row_scale(w, bits)
    return (u - torch.round(u)).abs()


def probe_grids(state: dict[str, torch.Tensor]) -> dict[int, dict]:
    """One pass over the fake-quantised weights: for each grid in PROBE_GRIDS, the mean distance
    per layer and overall (weighted by element count)."""
    layers, totals, count = {b: {} for b in PROBE_GRIDS}, dict.fromkeys(PROBE_GRIDS, 0.0), 0
    for name, w in state.items():
        if not is_block_matrix(name, w.ndim):
            continue  # only the fake-quantised Linear weights (not the 2-D resid_mix)
        # Zero-initialised rows that never moved sit trivially on the grid; leave them out.
        w = w.float()
        rows = w[w.abs().amax(dim=1) > 0]
        if rows.numel() == 0:
            continue
        count += rows.numel()
        for b in PROBE_GRIDS:
            d = grid_distance(rows, b)
            layers[b][name] = float(d.mean())
            totals[b] += float(d.sum())
    return {
        b: {
            "grid_bits": b,
            "layers": layers[b],
            "mean_distance": totals[b] / count if count else float("nan"),
            "n_weights": count,
        }
        for b in PROBE_GRIDS
    }


def distances(grids: dict[int, dict]) -> dict[str, float]:
    """Mean distance to each grid, keyed by its label (int8 ... int2, ternary)."""
    return {bits_label(b): g["mean_distance"] for b, g in grids.items()}


def probe_weights(state: dict[str, torch.Tensor], bits: int) -> dict:
    """The probe against the `bits` grid, with the distances to every grid beside it."""
    grids = probe_grids(state)
    return {**grids[bits], "distances": distances(grids)}


def probe_checkpoint(path: str) -> dict:
    """The probe of one run: its pre-warmdown checkpoint's distance to each grid in PROBE_GRIDS."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    grids = probe_grids(ckpt["model"])
    return {
        "run_id": ckpt["run_id"],
        "run_bits": ckpt["bits"],
        "size": ckpt["size"],
        "grids": {str(b): g for b, g in grids.items()},
        "distances": distances(grids),
    }
