"""The optimum map: the warmdown fraction that wins in each (bit-width, size) cell of the base arm."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from ..stats import base_arm, first_phase_rows
from .loss_vs_warmdown import optimum_found
from .style import COLUMN_WIDTH, FULL_WIDTH, bits_color, bits_name, save, sizes_in_order


def draw(tables, pdf: str, png: str) -> list[str]:
    """One colour per warmdown level the drawn cells offer (key above); the bit-width labels in
    each bit-width's colour, as in every other figure."""
    best = first_phase_rows(base_arm(tables["optimal_warmdown"]))
    offered = first_phase_rows(base_arm(tables["loss_by_warmdown"]))["warmdown_frac"]
    sizes = sizes_in_order(best["size"])
    bits = sorted(best["bits"].unique(), reverse=True)
    levels = sorted(set(offered) | set(best["best_warmdown"]))
    grid = np.full((len(bits), len(sizes)), np.nan)
    for r in best.itertuples():
        grid[bits.index(r.bits), sizes.index(r.size)] = levels.index(r.best_warmdown)
    width = min(FULL_WIDTH, max(COLUMN_WIDTH, 0.9 + 0.45 * len(sizes)))
    fig, ax = plt.subplots(figsize=(width, 1.2 + 0.3 * len(bits)), layout="constrained")
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
    for label, b in zip(ax.get_yticklabels(), bits):
        label.set_color(bits_color(b))
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_xlabel("model size (parameters)")
    fig.legend(
        [Patch(facecolor=cmap(k), edgecolor="0.6") for k in range(len(levels))],
        [f"wd{100 * w:.0f}" for w in levels],
        title="optimal warmdown (% of steps)",
        title_fontsize=6.5,
        loc="outside upper center",
        ncol=min(len(levels), 6),
        fontsize=6.5,
    )
    return save(fig, pdf, png)


def caption(tables) -> str:
    return optimum_found(first_phase_rows(base_arm(tables["optimal_warmdown"])))
