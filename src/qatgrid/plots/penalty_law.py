"""The quantisation penalty law: penalty against size, its log-linear fit and held-out sizes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .style import COLUMN_WIDTH, bits_color, bits_name, save


def draw(tables, pdf: str, png: str) -> list[str]:
    """Per-seed points (squares: held-out sizes), the fit and its 95% prediction band."""
    penalty, fit = tables["penalty"], tables["penalty_fit"]
    bits = int(penalty["bits"].iloc[0])
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.5), layout="constrained")
    held = set(fit.loc[fit["heldout"], "size"])
    for is_held, g in penalty.groupby(penalty["size"].isin(held)):
        ax.scatter(
            g["n_params"],
            g["penalty"],
            s=12,
            alpha=0.7,
            marker="s" if is_held else "o",
            facecolors="white" if is_held else bits_color(bits),
            edgecolors=bits_color(bits),
            lw=0.8,
            label="held-out size (per seed)" if is_held else "fitted size (per seed)",
        )
    xs = np.geomspace(fit["n_params"].min() / 1.5, fit["n_params"].max() * 1.5, 100)
    a, b = fit["intercept"].iloc[0], fit["slope_per_decade"].iloc[0]
    ax.plot(xs, a + b * np.log10(xs), color="0.2", lw=1, label=f"fit: {b:+.3f} nats per decade")
    f = fit.sort_values("n_params")
    ax.fill_between(
        f["n_params"], f["pi_low"], f["pi_high"], color="0.6", alpha=0.3, lw=0, label="95% prediction interval"
    )
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(f"{bits_name(bits)} − FP16 loss (nats)")
    ax.axhline(0, color="0.7", lw=0.5)
    fig.legend(loc="outside upper center", ncol=2, fontsize=6.5)
    return save(fig, pdf, png)


def caption(tables) -> str:
    fit = tables["penalty_fit"]
    held = fit[fit["heldout"]]
    return (
        f"This run: slope {fit['slope_per_decade'].iloc[0]:+.4f} nats per decade "
        f"(R² {fit['r_squared'].iloc[0]:.2f}, {int(fit['n_fit_points'].iloc[0])} points); "
        f"{int(held['covered'].sum())}/{len(held)} held-out sizes inside their 95% prediction interval."
    )
