"""The boundary map: bit-width × size, each cell coloured by its regime, optimum and min |z| written in."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch

from ..sizes import size_to_number
from .captions import pct
from .style import COLUMN_WIDTH, FULL_WIDTH, bits_name, save

# Okabe-Ito hues again; "not run" stays white so the grid's shape reads at once.
REGIME_COLORS = {
    "decisive at the expected optimum": "#0072B2",
    "decisive elsewhere": "#D55E00",
    "noise-dominated": "#F0E442",
    "one warmdown only": "#DDDDDD",
    "not run": "#FFFFFF",
}


def draw(tables, pdf: str, png: str) -> list[str]:
    """stats.boundary_map's table: one row per bits × size, 'not run' included."""
    table = tables["boundary_map"]
    sizes = sorted(table["size"].unique(), key=size_to_number)
    bits = sorted(table["bits"].unique(), reverse=True)
    regimes = list(REGIME_COLORS)
    expected = table["expected_warmdown"].iloc[0]
    labels = {r: r.replace("the expected optimum", f"wd{100 * expected:.0f}") for r in regimes}
    width = min(FULL_WIDTH, max(COLUMN_WIDTH, 0.9 + 0.5 * len(sizes)))
    fig, ax = plt.subplots(figsize=(width, 1.0 + 0.36 * len(bits)), layout="constrained")
    for r in table.itertuples():
        i, j = bits.index(r.bits), sizes.index(r.size)
        ax.add_patch(
            plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=REGIME_COLORS[r.regime], edgecolor="0.75", lw=0.5)
        )
        if r.regime == "not run":
            continue
        text = f"{100 * r.best_warmdown:.0f}%"
        if np.isfinite(r.min_abs_z):
            text += f"\n|z|≥{r.min_abs_z:.1f}" if r.min_abs_z < 100 else "\n|z|>99"
        dark = r.regime in ("decisive at the expected optimum", "decisive elsewhere")
        ax.text(j, i, text, ha="center", va="center", fontsize=5.5, linespacing=1.1, color="white" if dark else "black")
    ax.set_xlim(-0.5, len(sizes) - 0.5)
    ax.set_ylim(len(bits) - 0.5, -0.5)
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_yticks(range(len(bits)), [bits_name(b) for b in bits])
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    ax.set_xlabel("model size (parameters)")
    present = [r for r in regimes if r in set(table["regime"])]
    fig.legend(
        [Patch(facecolor=REGIME_COLORS[r], edgecolor="0.6") for r in present],
        [labels[r] for r in present],
        loc="outside upper center",
        ncol=min(3, len(present)),
        fontsize=6.5,
    )
    return save(fig, pdf, png)


def caption(tables) -> str:
    table = tables["boundary_map"]
    counts = table["regime"].value_counts()
    expected = pct(table["expected_warmdown"].iloc[0])
    parts = [f"{n} {r.replace('at the expected optimum', 'at ' + expected)}" for r, n in counts.items()]
    return f"This run, over {len(table)} bit-width × size cells: " + ", ".join(parts) + "."
