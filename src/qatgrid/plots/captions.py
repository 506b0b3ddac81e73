"""Report captions with this run's numbers: each figure's rst template (workflow/report/) holds the
paper's claim and a {found} field; `found` states what the tables of this run show."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..sizes import size_to_number
from ..stats import base_arm
from .style import bits_name, phase_label


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _first_phase(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["phase"] == df.groupby(["bits", "size"])["phase"].transform("min")]


def optimum_found(best: pd.DataFrame) -> str:
    """'optimal warmdown 33% in 12/12 Phase 2 cells ...' over the base arm's FP16/INT8/INT6 cells."""
    b = base_arm(best)
    high = b[(b["bits"] > 4) & (b["n_warmdowns"] > 1)]  # a single level has no optimum to find
    if high.empty:
        return "This run has no FP16/INT8/INT6 cells in the base arm."
    mode = high["best_warmdown"].mode().iloc[0]
    parts = []
    for phase, g in high.groupby("phase"):
        parts.append(f"{(g['best_warmdown'] == mode).sum()}/{len(g)} {phase_label(phase)} cells")
    text = f"This run: optimal warmdown {_pct(mode)} in " + ", ".join(parts) + " (FP16/INT8/INT6)"
    other = high[high["best_warmdown"] != mode]
    if len(other):
        text += "; elsewhere: " + ", ".join(
            f"{bits_name(r.bits)} {r.size} at {_pct(r.best_warmdown)}" for r in other.itertuples()
        )
    return text + "."


def boundary_found(tests: pd.DataFrame) -> str:
    """Per low bit-width: the sizes where the optimum beats every alternative significantly."""
    low = tests[tests["bits"] <= 4]
    if low.empty:
        return "This run has no INT4 (or lower) cells."
    out = []
    for bits, g in sorted(low.groupby("bits"), key=lambda kv: -kv[0]):
        cells = (
            g.groupby(["phase", "size"])
            .agg(
                sig=("significant", "all"),
                z=("z", lambda z: np.min(np.abs(z))),
                won=("seeds_best_wins", "min"),
                n=("n_pairs", "min"),
            )
            .reset_index()
        )
        cells = cells.sort_values("size", key=lambda s: s.map(size_to_number))
        sig = cells[cells["sig"]]
        if sig.empty:
            out.append(
                f"{bits_name(bits)}: no size significant after Holm (max |z| {cells['z'].max():.1f} "
                f"over {len(cells)} size{'s' * (len(cells) != 1)})"
            )
            continue
        detail = ", ".join(f"{r.size} (|z| {r.z:.1f}, {r.won}/{r.n} seeds)" for r in sig.itertuples())
        out.append(f"{bits_name(bits)}: significant at {len(sig)}/{len(cells)} sizes: {detail}")
    return "This run: " + "; ".join(out) + "."


def penalty_found(fit: pd.DataFrame) -> str:
    held = fit[fit["heldout"]]
    return (
        f"This run: slope {fit['slope_per_decade'].iloc[0]:+.4f} nats per decade "
        f"(R² {fit['r_squared'].iloc[0]:.2f}, {int(fit['n_fit_points'].iloc[0])} points); "
        f"{int(held['covered'].sum())}/{len(held)} held-out sizes inside their 95% prediction interval."
    )


def probe_found(ratio: pd.DataFrame) -> str:
    if ratio.empty:
        return "This run has no probed pairs."
    above = (ratio["ci_low"] > 1).sum()
    return (
        f"This run: QAT/FP16 ratio {ratio['ratio'].min():.3f}–{ratio['ratio'].max():.3f} over "
        f"{len(ratio)} (phase, size) cells (mean {ratio['ratio'].mean():.3f}); the 95% interval lies "
        f"above 1 in {above}/{len(ratio)}."
    )


def robustness_found(rob: pd.DataFrame) -> str:
    if rob.empty:
        return "This run has no robustness arms."
    parts = [f"{arm} {int(g['unchanged'].sum())}/{len(g)}" for arm, g in rob.groupby("arm")]
    return (
        "This run: optimum unchanged from the base arm in "
        f"{int(rob['unchanged'].sum())}/{len(rob)} arm cells (" + ", ".join(parts) + ")."
    )


def boundary_map_found(table: pd.DataFrame) -> str:
    counts = table["regime"].value_counts()
    expected = _pct(table["expected_warmdown"].iloc[0])
    parts = [f"{n} {r.replace('at the expected optimum', 'at ' + expected)}" for r, n in counts.items()]
    return f"This run, over {len(table)} bit-width × size cells: " + ", ".join(parts) + "."


def render(template: str, found: str) -> str:
    """The caption's rst; |z| is escaped, which rst would otherwise read as a substitution."""
    return template.format(found=found).replace("|z|", r"\|z\|")
