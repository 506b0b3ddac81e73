"""The INT4 boundary: does the optimum beat each alternative, seed by seed, and from which size?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, NullFormatter

from .style import bits_color, bits_name, facet_grid, save

ALT_MARKERS = ["o", "s", "^", "D", "v", "P"]
PAPER_BOUNDARY = 50e6  # parameters: the paper's INT4 warmdown effect appears from 50M up


def paired_z_by_size(tests: pd.DataFrame, pdf: str, png: str, threshold: float = 1.96) -> list[str]:
    """Paired z of the cell's best warmdown against each alternative (one marker shape per
    alternative level; filled = significant after Holm), z = threshold (z >= 0 by construction),
    the paper's 50M line, seeds won along the bottom. One panel per bit-width at INT4 and below (every
    bit-width when the grid has none)."""
    low = tests[tests["bits"] <= 4]
    tests = low if len(low) else tests
    bits = sorted(tests["bits"].unique(), reverse=True)
    fig, axes = facet_grid(len(bits), panel_w=3.3, panel_h=2.2, max_cols=2)
    alts = sorted(tests["alt_warmdown"].unique())
    zmax = float(np.nanmax(np.abs(tests["z"].replace([np.inf, -np.inf], np.nan)))) if len(tests) else 2
    for ax, b in zip(axes, bits):
        g = tests[tests["bits"] == b]
        for k, alt in enumerate(alts):
            a = g[g["alt_warmdown"] == alt].sort_values("n_params")
            if a.empty:
                continue
            sig = a["significant"].astype(bool).to_numpy()
            z = a["z"].to_numpy(dtype=float)
            marker, color = ALT_MARKERS[k % len(ALT_MARKERS)], bits_color(b)
            ax.scatter(a["n_params"][sig], z[sig], color=color, marker=marker, s=18, zorder=3)
            ax.scatter(
                a["n_params"][~sig], z[~sig], facecolors="white", edgecolors=color, marker=marker, s=18, zorder=3
            )
        ax.axhline(threshold, color="0.4", ls="--", lw=0.7)  # z >= 0 always: the best has the lowest mean
        _seeds_won_rows(ax, g)
        ax.axvline(PAPER_BOUNDARY, color="0.6", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_title(f"{bits_name(b)}: best warmdown vs each alternative")
        _z_axis(ax, zmax)
        xs = g["n_params"].to_numpy(dtype=float)
        if len(xs):
            ax.set_xlim(min(xs.min(), PAPER_BOUNDARY) / 1.6, max(xs.max(), PAPER_BOUNDARY) * 1.9)
    fig.supxlabel("parameters (log scale; dotted: the paper's 50M boundary)", fontsize=8)
    fig.supylabel("paired z of the best warmdown\n(numbers at the bottom: seeds it won)", fontsize=8)
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker=ALT_MARKERS[k % len(ALT_MARKERS)], color="0.3", ms=4) for k in range(len(alts))
    ]
    labels = [f"vs wd{100 * a:.0f}" for a in alts]
    handles += [
        Line2D([], [], ls="", marker="o", color="0.3", ms=4),
        Line2D([], [], ls="", marker="o", mfc="white", color="0.3", ms=4),
        Line2D([], [], ls="--", color="0.4", lw=0.7),
    ]
    labels += ["significant (Holm)", "not significant", f"z = {threshold}"]
    fig.legend(handles, labels, loc="outside upper center", ncol=2, fontsize=6.5)
    return save(fig, pdf, png)


def _seeds_won_rows(ax, g: pd.DataFrame) -> None:
    """Seeds won (best vs alternative) along the bottom of the panel, in two staggered rows so
    neighbouring sizes never collide; alternatives at one size are joined."""
    from matplotlib.transforms import blended_transform_factory

    tr = blended_transform_factory(ax.transData, ax.transAxes)
    for rank, (x, cell) in enumerate(g.sort_values("alt_warmdown").groupby("n_params")):
        text = " ".join(f"{w}/{n}" for w, n in zip(cell["seeds_best_wins"], cell["n_pairs"]))
        ax.text(
            x, 0.03 if rank % 2 == 0 else 0.10, text, transform=tr, ha="center", va="bottom", fontsize=5.5, color="0.3"
        )


def _z_axis(ax, zmax: float) -> None:
    """Linear up to |z| = 5; beyond, symlog with labelled decades so 2 and 15 both read."""
    if zmax <= 5:
        ax.set_ylim(-3, 5)
        ax.set_yticks([0, 2, 4])
        return
    ax.set_yscale("symlog", linthresh=2, linscale=1)
    top = 10 ** np.ceil(np.log10(zmax * 1.2))
    ticks = [0, 2] + [float(v) for v in 10 ** np.arange(1, np.log10(top) + 1)]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:g}")
    ax.set_ylim(-6, top)
