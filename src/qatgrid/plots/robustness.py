"""Phase 5 robustness: does each arm (optimiser, warmdown shape, length) keep the base arm's optimum?"""

from __future__ import annotations

from ..runs import BASE_ARM
from .captions import interval_note
from .loss_vs_warmdown import draw_curve
from .style import bits_legend, facet_grid, save


def arm_name(optimizer: str, schedule: str, length_mult) -> str:
    parts = []
    if optimizer != BASE_ARM["optimizer"]:
        parts.append({"adamw": "AdamW"}.get(optimizer, optimizer))
    if schedule != BASE_ARM["schedule"]:
        parts.append(f"{schedule} warmdown")
    if float(length_mult) != BASE_ARM["length_mult"]:
        parts.append(f"{float(length_mult):g}× length")
    return ", ".join(parts) or "base"


def draw(tables, pdf: str, png: str) -> list[str]:
    """One panel per (arm, size): the arm's curves (solid) and the base-arm cell each is compared
    with (dashed, `stats.robustness_curves`), each relative to its own optimum (ringed), bars the
    paired interval of that difference."""
    df = tables["robustness_curves"]
    df = df.assign(arm=[arm_name(*a) for a in df[["optimizer", "schedule", "length_mult"]].to_numpy()])
    panels = sorted(set(zip(df["arm"], df["size"])))
    fig, axes = facet_grid(max(1, len(panels)), panel_w=1.75, sharey=True)
    if not panels:
        axes[0].text(0.5, 0.5, "no robustness arms in this config", ha="center", va="center")
        axes[0].set_axis_off()
        return save(fig, pdf, png)
    for ax, (name, size) in zip(axes, panels):
        g = df[(df["arm"] == name) & (df["size"] == size)]
        for (_, bits, curve), gc in g.groupby(["phase", "bits", "curve"]):
            draw_curve(ax, gc, int(bits), ls="-" if curve == "arm" else "--")
        ax.set_title(f"{name} · {size}" if len(name) <= 18 else f"{name}\n{size}")  # long arms: two lines
        ax.set_xticks(sorted(100 * g["warmdown_frac"].unique()))
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0f}")
    level = f"{100 * (1 - tables.alpha):g}%"
    fig.supxlabel("warmdown fraction (% of steps)\ndashed: base arm (Muon, linear, 1×)", fontsize=8)
    fig.supylabel(f"loss above optimum (nats)\nbars: paired {level} interval", fontsize=8)
    bits_legend(fig, sorted(df["bits"].unique(), reverse=True))
    return save(fig, pdf, png)


def caption(tables) -> str:
    rob = tables["robustness"]
    if rob.empty:
        return "This run has no robustness arms."
    parts = [f"{arm} {int(g['unchanged'].sum())}/{len(g)}" for arm, g in rob.groupby("arm")]
    text = (
        "This run: optimum unchanged from the base arm in "
        f"{int(rob['unchanged'].sum())}/{len(rob)} arm cells (" + ", ".join(parts) + ")."
    )
    curves = tables["robustness_curves"]
    arms = interval_note(curves[curves["curve"] == "arm"], tables.alpha)
    base = interval_note(curves[curves["curve"] == "base"], tables.alpha)
    return text + f" Bars: arms {arms}" + (f"; base arm {base}." if base else ".")
