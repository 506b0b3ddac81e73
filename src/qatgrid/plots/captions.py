"""Report captions: each figure's rst template (workflow/report/<name>.rst) holds the paper's claim
and a {found} field, filled with what its module's `caption(tables)` says this run shows."""

from __future__ import annotations

import math


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def z_text(z: float) -> str:
    """|z| for a sentence: 'inf' for a difference constant across seeds (sd 0)."""
    return "∞" if math.isinf(z) else f"{z:.1f}"


def interval_note(curves, alpha: float) -> str:
    """What the bars of paired-difference curves rest on: '95% paired intervals over 2 seeds; none
    at INT3, ternary (1 seed)'. Empty when there are no curves."""
    from .style import bits_name

    seeds = curves.groupby("bits")["n_pairs"].max()
    if seeds.empty:
        return ""
    multi = seeds[seeds >= 2]
    single = [f"{bits_name(b)}" for b in sorted(seeds.index, reverse=True) if seeds[b] < 2]
    if multi.empty:
        return "no paired intervals (1 seed)"
    lo, hi = int(multi.min()), int(multi.max())
    text = f"{100 * (1 - alpha):g}% paired intervals over {lo}{'' if lo == hi else f'–{hi}'} seeds"
    return text + (f"; none at {', '.join(single)} (1 seed)" if single else "")


def render(template: str, found: str) -> str:
    """The caption's rst; |z| is escaped, which rst would otherwise read as a substitution."""
    return template.format(found=found).replace("|z|", r"\|z\|")
