"""Loss against warmdown fraction: does every bit-width at every size share the same optimum?"""

from __future__ import annotations

import pandas as pd

from ..stats import base_arm, first_phase_rows
from .captions import interval_note, pct
from .style import BITS_MARKERS, bits_color, bits_legend, bits_name, facet_grid, phase_label, save, sizes_in_order


def curve_points(curve: pd.DataFrame) -> pd.DataFrame:
    """y (each level's paired difference to its curve's best level, `stats.loss_by_warmdown`) and
    its interval as error-bar lengths (0 where a level has no interval: fewer than two seeds).
    A level sharing no seed with the best falls back to the difference of means."""
    delta = curve["mean_loss"] - curve["mean_loss"].min()
    y = curve["diff_mean"].fillna(delta)
    return curve.assign(
        y=y,
        err_low=(y - curve["diff_ci_low"]).fillna(0).clip(lower=0),
        err_high=(curve["diff_ci_high"] - y).fillna(0).clip(lower=0),
        is_best=curve["warmdown_frac"] == curve["best_warmdown"],
    )


def draw_curve(ax, curve: pd.DataFrame, bits: int, ls: str = "-") -> None:
    """One curve: each level against the curve's best level (ringed), paired interval as bars."""
    g = curve_points(curve).sort_values("warmdown_frac")
    color = bits_color(bits)
    x = 100 * g["warmdown_frac"]
    ax.errorbar(
        x,
        g["y"],
        yerr=[g["err_low"], g["err_high"]],
        color=color,
        ls=ls,
        lw=1,
        marker=BITS_MARKERS.get(bits, "o"),
        ms=3,
        capsize=1.5,
        elinewidth=0.6,
    )
    best = g[g["is_best"]]
    ax.scatter(100 * best["warmdown_frac"], best["y"], s=40, facecolors="none", edgecolors=color, lw=1, zorder=3)


def draw(tables, pdf: str, png: str) -> list[str]:
    """Base arm. One panel per size for FP16/INT8/INT6, then one per size for INT4 and below,
    each curve relative to its own optimum (ringed), the paired interval of that difference."""
    df = first_phase_rows(base_arm(tables["loss_by_warmdown"]))
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
    level = f"{100 * (1 - tables.alpha):g}%"
    fig.supylabel(f"loss above the curve's optimum (nats)\nbars: paired {level} interval over seeds", fontsize=8)
    bits_legend(fig, sorted(df["bits"].unique(), reverse=True))
    return save(fig, pdf, png)


def optimum_found(best: pd.DataFrame) -> str:
    """'optimal warmdown 33% in 12/12 Phase 2 cells ...' over the drawn FP16/INT8/INT6 cells."""
    high = best[(best["bits"] > 4) & (best["n_warmdowns"] > 1)]  # a single level has no optimum to find
    if high.empty:
        return "This run has no FP16/INT8/INT6 cells in the base arm."
    mode = high["best_warmdown"].mode().iloc[0]
    parts = []
    for phase, g in high.groupby("phase"):
        parts.append(f"{(g['best_warmdown'] == mode).sum()}/{len(g)} {phase_label(phase)} cells")
    text = f"This run: optimal warmdown {pct(mode)} in " + ", ".join(parts) + " (FP16/INT8/INT6)"
    other = high[high["best_warmdown"] != mode]
    if len(other):
        text += "; elsewhere: " + ", ".join(
            f"{bits_name(r.bits)} {r.size} at {pct(r.best_warmdown)}" for r in other.itertuples()
        )
    return text + "."


def caption(tables) -> str:
    best = first_phase_rows(base_arm(tables["optimal_warmdown"]))
    curves = first_phase_rows(base_arm(tables["loss_by_warmdown"]))
    note = interval_note(curves, tables.alpha)
    return optimum_found(best) + (f" Bars: {note}." if note else "")
