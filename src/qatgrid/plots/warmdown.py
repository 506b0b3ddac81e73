"""Loss against warmdown fraction: does every bit-width at every size share the same optimum?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from .style import BITS_MARKERS, bits_color, bits_legend, bits_name, facet_grid, save, sizes_in_order


def relative_curves(per_wd: pd.DataFrame) -> pd.DataFrame:
    """Each (phase, bits, size) curve as loss above its own optimum, with a 95% t interval of the
    mean across seeds; curves of different sizes and bit-widths then share one y scale."""
    df = per_wd.copy()
    key = ["phase", "bits", "size", "optimizer", "schedule", "length_mult"]
    df["delta"] = df["mean_loss"] - df.groupby(key)["mean_loss"].transform("min")
    n = df["n_seeds"].clip(lower=2)
    df["half_ci"] = (sps.t.ppf(0.975, n - 1) * df["sd_loss"] / np.sqrt(df["n_seeds"])).fillna(0)
    df["is_best"] = df["delta"] == 0
    return df


def draw_curve(ax, g: pd.DataFrame, bits: int, ls: str = "-", label=None) -> None:
    g = g.sort_values("warmdown_frac")
    color = bits_color(bits)
    x = 100 * g["warmdown_frac"]
    ax.errorbar(
        x,
        g["delta"],
        yerr=g["half_ci"],
        color=color,
        ls=ls,
        lw=1,
        marker=BITS_MARKERS.get(bits, "o"),
        ms=3,
        capsize=1.5,
        elinewidth=0.6,
        label=label,
    )
    best = g[g["is_best"]]
    ax.scatter(100 * best["warmdown_frac"], best["delta"], s=40, facecolors="none", edgecolors=color, lw=1, zorder=3)


def first_phase(df: pd.DataFrame) -> pd.DataFrame:
    """A (bits, size) cell run in several base-arm phases is drawn from its first phase only."""
    first = df.groupby(["bits", "size"])["phase"].transform("min")
    return df[df["phase"] == first]


def loss_vs_warmdown(per_wd: pd.DataFrame, pdf: str, png: str) -> list[str]:
    """Base arm. One panel per size for FP16/INT8/INT6, then one per size for INT4 and below,
    each curve relative to its own optimum (ringed), 95% interval across seeds."""
    df = relative_curves(first_phase(per_wd))
    high, low = df[df["bits"] > 4], df[df["bits"] <= 4]
    panels = [(s, high[high["size"] == s], None) for s in sizes_in_order(high["size"])]
    for b in sorted(low["bits"].unique(), reverse=True):
        lb = low[low["bits"] == b]
        panels += [(s, lb[lb["size"] == s], b) for s in sizes_in_order(lb["size"])]
    fig, axes = facet_grid(len(panels), sharey=True)
    for ax, (size, g, low_bits) in zip(axes, panels):
        for bits, gb in g.groupby("bits"):
            draw_curve(ax, gb, int(bits))
        ax.set_title(size if low_bits is None else f"{bits_name(low_bits)} · {size}")
        ax.set_xticks(sorted(100 * g["warmdown_frac"].unique()))
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0f}")
        ax.tick_params(axis="x", labelsize=6)
    fig.supxlabel("warmdown fraction (% of steps)", fontsize=8)
    fig.supylabel("loss above the curve's optimum (nats)", fontsize=8)
    bits_legend(fig, sorted(df["bits"].unique(), reverse=True))
    return save(fig, pdf, png)
