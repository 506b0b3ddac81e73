"""Grid distance: do QAT weights sit closer to their grid than FP16 weights do?"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..sizes import size_to_number
from .style import COLUMN_WIDTH, FULL_WIDTH, bits_color, bits_name, phase_label, save

PHASE_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]


def draw(tables, pdf: str, png: str) -> list[str]:
    """QAT/FP16 ratio of the mean distance to the grid, per size (numeric order) and phase,
    with its 95% t interval across matched runs; 1 = no closer."""
    ratio = tables["probe_ratio"]
    r = ratio.assign(x=ratio["size"].map(size_to_number)).sort_values(["x", "phase"])
    sizes = list(dict.fromkeys(r["size"]))
    phases = sorted(r["phase"].unique())
    bits = int(r["grid_bits"].iloc[0])
    width = min(FULL_WIDTH, max(COLUMN_WIDTH, 1.0 + 0.5 * len(sizes)))
    fig, ax = plt.subplots(figsize=(width, 2.4), layout="constrained")
    # phases that share a size are spread around its tick, so no marker hides another
    slot = r.groupby("size")["phase"].rank(method="first") - 1
    count = r.groupby("size")["phase"].transform("count")
    r = r.assign(dx=(slot - (count - 1) / 2) * 0.6 / count.clip(lower=1))
    for k, phase in enumerate(phases):
        g = r[r["phase"] == phase]
        x = np.array([sizes.index(s) for s in g["size"]]) + g["dx"].to_numpy()
        lo = (g["ratio"] - g["ci_low"]).fillna(0).clip(lower=0)
        hi = (g["ci_high"] - g["ratio"]).fillna(0).clip(lower=0)
        ax.errorbar(
            x,
            g["ratio"],
            yerr=[lo, hi],
            ls="",
            marker=PHASE_MARKERS[k % len(PHASE_MARKERS)],
            ms=4,
            color=bits_color(bits),
            mfc="white" if k % 2 else bits_color(bits),
            capsize=2,
            lw=0.8,
            label=phase_label(phase),
        )
    ax.axhline(1, color="0.3", lw=0.8, ls="--")
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_xlim(-0.6, len(sizes) - 0.4)
    lo, hi = np.nanmin(r["ci_low"].fillna(r["ratio"])), np.nanmax(r["ci_high"].fillna(r["ratio"]))
    pad = 0.15 * max(hi - lo, 0.02)
    ax.set_ylim(min(lo, 1) - pad, max(hi, 1) + pad)
    ax.set_xlabel("model size (parameters)")
    ax.set_ylabel(f"distance to {bits_name(bits)} grid,\nQAT / FP16 (dashed: 1)")
    fig.legend(loc="outside upper center", ncol=min(len(phases), max(1, int(width / 1.7))), fontsize=6.5)
    return save(fig, pdf, png)


def caption(tables) -> str:
    ratio = tables["probe_ratio"]
    if ratio.empty:
        return "This run has no probed pairs."
    above = (ratio["ci_low"] > 1).sum()
    return (
        f"This run: QAT/FP16 ratio {ratio['ratio'].min():.3f}–{ratio['ratio'].max():.3f} over "
        f"{len(ratio)} (phase, size) cells (mean {ratio['ratio'].mean():.3f}); the 95% interval lies "
        f"above 1 in {above}/{len(ratio)}."
    )
