"""Phase 5 robustness: does each arm (optimiser, warmdown shape, length) keep the base arm's optimum?"""

from __future__ import annotations

import pandas as pd

from .style import bits_legend, facet_grid, save
from .warmdown import draw_curve, relative_curves

BASE_ARM = ("muon", "linear", 1)


def arm_name(optimizer: str, schedule: str, length_mult) -> str:
    parts = []
    if optimizer != BASE_ARM[0]:
        parts.append({"adamw": "AdamW"}.get(optimizer, optimizer))
    if schedule != BASE_ARM[1]:
        parts.append(f"{schedule} warmdown")
    if float(length_mult) != BASE_ARM[2]:
        parts.append(f"{float(length_mult):g}× length")
    return ", ".join(parts) or "base"


def robustness(per_wd: pd.DataFrame, pdf: str, png: str) -> list[str]:
    """One panel per (arm, size): the arm's curves (solid) and the base arm's at the same
    bit-widths and size (dashed, first base phase), each relative to its own optimum (ringed)."""
    df = relative_curves(per_wd)
    arm = [tuple(v) for v in df[["optimizer", "schedule", "length_mult"]].to_numpy()]
    df["arm"] = [arm_name(*a) for a in arm]
    base = df[df["arm"] == "base"]
    base = base[base["phase"] == base.groupby(["bits", "size"])["phase"].transform("min")]
    panels = sorted({(a, s) for a, s in zip(df["arm"], df["size"]) if a != "base"})
    fig, axes = facet_grid(max(1, len(panels)), panel_w=1.75, sharey=True)
    if not panels:
        axes[0].text(0.5, 0.5, "no robustness arms in this config", ha="center", va="center")
        axes[0].set_axis_off()
        return save(fig, pdf, png)
        return
    for ax, (name, size) in zip(axes, panels):
        g = df[(df["arm"] == name) & (df["size"] == size)]
        for bits, gb in g.groupby("bits"):
            draw_curve(ax, gb, int(bits))
            gb0 = base[
                (base["bits"] == bits) & (base["size"] == size) & base["warmdown_frac"].isin(gb["warmdown_frac"])
            ]
            if len(gb0):
                draw_curve(ax, relative_curves(gb0.drop(columns=["delta", "half_ci", "is_best"])), int(bits), ls="--")
        ax.set_title(f"{name} · {size}" if len(name) <= 18 else f"{name}\n{size}")  # long arms: two lines
        ax.set_xticks(sorted(100 * g["warmdown_frac"].unique()))
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0f}")
    fig.supxlabel("warmdown fraction (% of steps)\ndashed: base arm (Muon, linear, 1×)", fontsize=8)
    fig.supylabel("loss above optimum (nats)", fontsize=8)
    bits_legend(fig, sorted(df.loc[df["arm"] != "base", "bits"].unique(), reverse=True))
    return save(fig, pdf, png)
