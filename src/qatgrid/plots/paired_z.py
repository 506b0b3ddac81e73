"""The INT4 boundary: does the optimum beat each alternative, seed by seed, and from which size?"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullFormatter

from ..sizes import size_to_number
from ..stats import critical_z, untested_reason
from .captions import z_text
from .style import bits_color, bits_name, facet_grid, save

ALT_MARKERS = ["o", "s", "^", "D", "v", "P"]
PAPER_BOUNDARY = 50e6  # parameters: the paper's INT4 warmdown effect appears from 50M up


def _critical(g: pd.DataFrame, alpha: float) -> pd.Series:
    """Per size (n_params): the |z| from which Holm calls the cell's alternative significant."""
    cells = g.groupby("n_params").agg(n=("n_pairs", "min"), k=("alt_warmdown", "count"))
    return pd.Series([critical_z(r.n, r.k, alpha) for r in cells.itertuples()], index=cells.index)


def _reasons(g: pd.DataFrame) -> list[str]:
    """Why the panel's tests have no z, one line per distinct reason."""
    reasons = [untested_reason(r.n_pairs, r.mean_diff, r.sd_diff) for r in g.itertuples()]
    return list(dict.fromkeys(r for r in reasons if r))


def draw(tables, pdf: str, png: str) -> list[str]:
    """Paired z of the cell's best warmdown against each alternative (one marker shape per
    alternative level; filled = significant after Holm), dashes at the z from which Holm calls a
    cell significant (z >= 0 by construction), the paper's 50M line, seeds won along the bottom. One
    panel per bit-width at INT4 and below (every bit-width when the grid has none); a panel with no
    testable cell says why."""
    tests = tables["paired_tests"]
    low = tests[tests["bits"] <= 4]
    tests = low if len(low) else tests
    bits = sorted(tests["bits"].unique(), reverse=True)
    fig, axes = facet_grid(len(bits), panel_w=3.3, panel_h=2.2, max_cols=2)
    alts = sorted(tests["alt_warmdown"].unique())
    finite = np.abs(tests["z"].to_numpy(dtype=float))
    finite = finite[np.isfinite(finite)]
    zmax = float(finite.max()) if finite.size else 2.0
    dashed = False
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
        crit = _critical(g, tables.alpha).dropna()
        if len(crit):
            dashed = True
            if crit.nunique() == 1:
                ax.axhline(crit.iloc[0], color="0.4", ls="--", lw=0.7)
            else:  # sizes with other seed counts: a step at each size
                ax.plot(crit.index, crit.to_numpy(), color="0.4", ls="--", lw=0.7, drawstyle="steps-mid")
        if not np.isfinite(g["z"].to_numpy(dtype=float)).any():
            ax.text(
                0.5,
                0.55,
                "\n".join(_reasons(g)) or "no paired test",
                transform=ax.transAxes,
                ha="center",
                va="center",
                fontsize=6.5,
                color="0.3",
            )
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
    shapes = [
        Line2D([], [], ls="", marker=ALT_MARKERS[k % len(ALT_MARKERS)], color="0.3", ms=4) for k in range(len(alts))
    ]
    labels = [f"vs wd{100 * a:.0f}" for a in alts]
    fills = [Patch(facecolor="0.3", edgecolor="0.3"), Patch(facecolor="white", edgecolor="0.3")]
    fill_labels = ["filled: significant after Holm", "open: not significant"]
    if dashed:
        fills.append(Line2D([], [], ls="--", color="0.4", lw=0.7))
        fill_labels.append(f"dashed: Holm's critical z (α = {tables.alpha:g})")
    leg = fig.legend(
        shapes,
        labels,
        title="shape: alternative warmdown",
        loc="outside upper left",
        fontsize=6.5,
        title_fontsize=6.5,
        ncol=min(len(alts), 3),
    )
    leg._legend_box.align = "left"
    fig.legend(
        fills,
        fill_labels,
        title="fill: paired t test, Holm within a cell",
        loc="outside upper right",
        fontsize=6.5,
        title_fontsize=6.5,
    )
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


def caption(tables) -> str:
    """Per low bit-width: the sizes where the optimum beats every alternative significantly, and
    the sizes that cannot be tested, with the reason."""
    tests = tables["paired_tests"]
    low = tests[tests["bits"] <= 4]
    if low.empty:
        return "This run has no INT4 (or lower) cells."
    out = []
    for bits, g in sorted(low.groupby("bits"), key=lambda kv: -kv[0]):
        g = g.assign(
            reason=[untested_reason(r.n_pairs, r.mean_diff, r.sd_diff) for r in g.itertuples()],
            abs_z=np.abs(g["z"].to_numpy(dtype=float)),
        )
        cells = (
            g.groupby(["phase", "size"])
            .agg(
                sig=("significant", "all"),
                z=("abs_z", "min"),
                won=("seeds_best_wins", "min"),
                n=("n_pairs", "min"),
                reason=("reason", lambda r: next((x for x in r if x), None)),
            )
            .reset_index()
        )
        cells = cells.sort_values("size", key=lambda s: s.map(size_to_number))
        untested, tested = cells[cells["reason"].notna()], cells[cells["reason"].isna()]
        parts = []
        sig = tested[tested["sig"]]
        if len(sig):
            detail = ", ".join(f"{r.size} (|z| {z_text(r.z)}, {r.won}/{r.n} seeds)" for r in sig.itertuples())
            parts.append(f"significant at {len(sig)}/{len(tested)} sizes: {detail}")
        elif len(tested):
            parts.append(
                f"no size significant after Holm (max |z| {z_text(tested['z'].max())} "
                f"over {len(tested)} size{'s' * (len(tested) != 1)})"
            )
        for reason, r in untested.groupby("reason", sort=False):
            parts.append(f"untested at {', '.join(r['size'])} ({reason})")
        out.append(f"{bits_name(bits)}: " + ", and ".join(parts))
    return "This run: " + "; ".join(out) + "."
