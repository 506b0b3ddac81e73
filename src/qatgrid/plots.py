"""Figures, each a function of tables only, saved as PDF and PNG at paper size."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .grid import bits_label  # noqa: E402
from .io import atomic_path  # noqa: E402

COLUMN_WIDTH, FULL_WIDTH = 3.4, 7.0  # inches, a two-column paper
plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
                     "xtick.labelsize": 7, "ytick.labelsize": 7, "figure.dpi": 150})
BITS_COLORS = {16: "#1f77b4", 8: "#2ca02c", 6: "#d62728", 4: "#9467bd"}


def save(fig, pdf_path: str, png_path: str) -> None:
    if not fig.legends:
        fig.tight_layout()
    for path in (pdf_path, png_path):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], bbox_inches="tight")
    plt.close(fig)


def _sizes_sorted(df: pd.DataFrame) -> list[str]:
    return list(df.sort_values("n_params")["size"].drop_duplicates())


def loss_vs_warmdown(per_wd: pd.DataFrame, pdf: str, png: str) -> None:
    """Mean final validation loss (best LR per warmdown) against warmdown fraction, one panel per size."""
    sizes = _sizes_sorted(per_wd)
    fig, axes = plt.subplots(1, len(sizes), figsize=(FULL_WIDTH, 2.2), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        for (phase, bits), g in per_wd[per_wd["size"] == size].groupby(["phase", "bits"]):
            g = g.sort_values("warmdown_frac")
            ax.errorbar(100 * g["warmdown_frac"], g["mean_loss"], yerr=g["sd_loss"].fillna(0), marker="o", ms=3,
                        capsize=2, color=BITS_COLORS.get(bits), label=f"{bits_label(bits).upper()} ({phase})")
        ax.set_title(size)
        ax.set_xlabel("warmdown fraction (% of steps)")
    axes[0][0].set_ylabel("final val loss (nats/token)")
    handles = {}
    for ax in axes[0]:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    fig.legend(handles.values(), handles.keys(), frameon=False, loc="lower center", ncol=min(4, len(handles)),
               bbox_to_anchor=(0.5, -0.02 - 0.06 * ((len(handles) - 1) // 4)))
    fig.subplots_adjust(bottom=0.3)
    save(fig, pdf, png)


def optimal_warmdown_heatmap(best: pd.DataFrame, pdf: str, png: str) -> None:
    """Optimal warmdown fraction per (bit-width, size) cell, base arm."""
    sizes = _sizes_sorted(best)
    bits = sorted(best["bits"].unique(), reverse=True)
    grid = np.full((len(bits), len(sizes)), np.nan)
    for _, r in best.iterrows():
        grid[bits.index(r["bits"]), sizes.index(r["size"])] = 100 * r["best_warmdown"]
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.5 + 0.4 * len(bits)))
    im = ax.imshow(grid, cmap="viridis", aspect="auto", vmin=0, vmax=100)
    for i in range(len(bits)):
        for j in range(len(sizes)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.0f}%", ha="center", va="center", color="white", fontsize=7)
    ax.set_xticks(range(len(sizes)), sizes)
    ax.set_yticks(range(len(bits)), [bits_label(b).upper() for b in bits])
    ax.set_xlabel("model size (parameters)")
    fig.colorbar(im, ax=ax, label="optimal warmdown (%)")
    save(fig, pdf, png)


def penalty_law(penalty: pd.DataFrame, fit: pd.DataFrame, pdf: str, png: str) -> None:
    """Quantisation penalty vs size: per-seed points, log-linear fit, 95% prediction band, held-out sizes."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
    held = set(fit.loc[fit["heldout"], "size"])
    for is_held, g in penalty.groupby(penalty["size"].isin(held)):
        ax.scatter(g["n_params"], g["penalty"], s=10, alpha=0.5, marker="s" if is_held else "o",
                   color="C3" if is_held else "C0", label="held-out (per seed)" if is_held else "fit (per seed)")
    xs = np.geomspace(fit["n_params"].min() / 1.5, fit["n_params"].max() * 1.5, 100)
    a, b = fit["intercept"].iloc[0], fit["slope_per_decade"].iloc[0]
    ax.plot(xs, a + b * np.log10(xs), color="k", lw=1, label=f"fit: {b:+.3f} nats/decade")
    f = fit.sort_values("n_params")
    ax.fill_between(f["n_params"], f["pi_low"], f["pi_high"], color="0.5", alpha=0.25, label="95% prediction")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"INT{int(penalty['bits'].iloc[0])} - FP16 val loss (nats)")
    ax.axhline(0, color="0.7", lw=0.5)
    ax.legend(frameon=False)
    save(fig, pdf, png)


def paired_z_by_size(tests: pd.DataFrame, pdf: str, png: str, threshold: float = 1.96) -> None:
    """The INT4 boundary: paired z of the best warmdown against each alternative, by size
    (INT4 cells when the grid has them, otherwise every bit-width)."""
    if (tests["bits"] == 4).any():
        tests = tests[tests["bits"] == 4]
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.4))
    for (bits, phase), g in tests.groupby(["bits", "phase"]):
        g = g.sort_values("n_params")
        z = g["z"].to_numpy(dtype=float)
        sig = g["significant"].to_numpy(dtype=bool)
        color = BITS_COLORS.get(bits)
        ax.plot(g["n_params"], z, color=color, lw=0.6, alpha=0.5)
        ax.scatter(g["n_params"][sig], z[sig], color=color, s=14, label=f"{bits_label(bits).upper()} ({phase})")
        ax.scatter(g["n_params"][~sig], z[~sig], facecolors="none", edgecolors=color, s=14)
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"z = {threshold}")
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=2)
    ax.set_xlabel("parameters")
    ax.set_ylabel("paired z (best vs alternative)")
    ax.set_title("filled: significant after Holm", fontsize=7)
    ax.legend(frameon=False, fontsize=6)
    save(fig, pdf, png)


def grid_distance(ratio: pd.DataFrame, pdf: str, png: str) -> None:
    """Mean distance to the INTb grid of pre-warmdown weights, FP16 vs QAT at b bits, per size."""
    r = ratio.sort_values("size", key=lambda s: s.map({v: i for i, v in enumerate(ratio["size"])}))
    x = np.arange(len(r))
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.2))
    bits = int(r["grid_bits"].iloc[0])
    ax.bar(x - 0.2, r["fp16_distance"], 0.4, label="FP16 training", color=BITS_COLORS[16])
    ax.bar(x + 0.2, r["qat_distance"], 0.4, label=f"INT{bits} QAT", color=BITS_COLORS.get(bits))
    for xi, (_, row) in zip(x, r.iterrows()):
        ax.text(xi, max(row["fp16_distance"], row["qat_distance"]) + 0.01, f"x{row['ratio']:.2f}",
                ha="center", fontsize=6)
    ax.axhline(0.25, color="k", ls=":", lw=0.8, label="uniform (0.25)")
    ax.set_xticks(x, [f"{s}\n{p}" for s, p in zip(r["size"], r["phase"])])
    ax.set_ylim(0, 0.5)
    ax.set_ylabel(f"distance to INT{bits} grid (steps)")
    ax.legend(frameon=False, loc="lower right")
    save(fig, pdf, png)


def robustness(per_wd: pd.DataFrame, pdf: str, png: str) -> None:
    """Phase 5 robustness: loss vs warmdown for each non-base arm (optimizer/schedule/length),
    one panel per arm, next to the base arm at the same sizes."""
    arm = per_wd["optimizer"] + "/" + per_wd["schedule"] + "/x" + per_wd["length_mult"].map("{:g}".format)
    base = "muon/linear/x1"
    arms = sorted(set(arm) - {base})
    fig, axes = plt.subplots(1, max(1, len(arms)), figsize=(FULL_WIDTH, 2.2), squeeze=False)
    if not arms:
        axes[0][0].text(0.5, 0.5, "no robustness arms in this config", ha="center", va="center")
        axes[0][0].set_axis_off()
    for ax, name in zip(axes[0], arms):
        sizes, bits_run = set(per_wd.loc[arm == name, "size"]), set(per_wd.loc[arm == name, "bits"])
        for label, style in ((name, "-"), (base, ":")):
            sel = per_wd[(arm == label) & per_wd["size"].isin(sizes) & per_wd["bits"].isin(bits_run)]
            for (size, bits), g in sel.groupby(["size", "bits"]):
                g = g.sort_values("warmdown_frac")
                ax.plot(100 * g["warmdown_frac"], g["mean_loss"], style, marker="o", ms=3, color=BITS_COLORS.get(bits),
                        label=f"{bits_label(bits).upper()} {size}" if label == name else None)
        ax.set_title(f"{name} (dotted: {base})")
        ax.set_xlabel("warmdown fraction (% of steps)")
        ax.legend(frameon=False)
    axes[0][0].set_ylabel("final val loss (nats/token)")
    save(fig, pdf, png)
