"""The optimum map: the warmdown fraction that wins in each (bit-width, size) cell of the base arm."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .style import COLUMN_WIDTH, FULL_WIDTH, bits_name, save, sizes_in_order
from .warmdown import first_phase


def optimal_warmdown_heatmap(best: pd.DataFrame, pdf: str, png: str) -> list[str]:
    best = first_phase(best)
    sizes = sizes_in_order(best["size"])
    bits = sorted(best["bits"].unique(), reverse=True)
    levels = sorted(best["best_warmdown"].unique())
    grid = np.full((len(bits), len(sizes)), np.nan)
    for r in best.itertuples():
        grid[bits.index(r.bits), sizes.index(r.size)] = levels.index(r.best_warmdown)
    width = min(FULL_WIDTH, max(COLUMN_WIDTH, 0.9 + 0.45 * len(sizes)))
    fig, ax = plt.subplots(figsize=(width, 0.9 + 0.3 * len(bits)), layout="constrained")
    cmap = plt.get_cmap("cividis", max(2, len(levels)))
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto", vmin=-0.5, vmax=max(2, len(levels)) - 0.5)
    for i in range(len(bits)):
        for j in range(len(sizes)):
            if np.isnan(grid[i, j]):
                ax.text(j, i, "–", ha="center", va="center", color="0.5", fontsize=7)
                continue
            k = int(grid[i, j])
            light = cmap(k)[:3] @ np.array([0.299, 0.587, 0.114]) > 0.5
            ax.text(
                j,
                i,
                f"{100 * levels[k]:.0f}%",
                ha="center",
                va="center",
                fontsize=7,
                color="black" if light else "white",
            )
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_yticks(range(len(bits)), [bits_name(b) for b in bits])
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_xlabel("model size (parameters)")
    return save(fig, pdf, png)
