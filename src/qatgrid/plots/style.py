"""One look for every figure: a colour per bit-width (Okabe-Ito, colour-blind safe), one font
size scale, PDF with embedded TrueType fonts (journals reject Type 3), PNG readable on a slide,
and a save that writes atomically."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_path  # noqa: E402
from ..runs import bits_label  # noqa: E402
from ..sizes import size_to_number  # noqa: E402

log = logging.getLogger(__name__)
logging.getLogger("fontTools").setLevel(logging.WARNING)  # its subsetting chatter would fill every log

COLUMN_WIDTH, FULL_WIDTH = 3.4, 7.0  # inches, a two-column paper
PNG_DPI = 200  # a 7-inch figure is 1400 px wide: sharp on a 1080p slide
MAX_COLS = 4  # facets per row before wrapping

# Okabe & Ito (2008); descending bits, so neighbours in precision get distinguishable hues.
BITS_COLORS = {16: "#000000", 8: "#0072B2", 6: "#009E73", 4: "#D55E00", 3: "#CC79A7", 2: "#E69F00", 1: "#56B4E9"}
BITS_MARKERS = {16: "o", 8: "s", 6: "^", 4: "D", 3: "v", 2: "P", 1: "X"}

plt.rcParams.update(
    {
        "font.family": "DejaVu Sans",
        "font.size": 8,
        "axes.titlesize": 8,
        "axes.labelsize": 8,
        "legend.fontsize": 7,
        "xtick.labelsize": 7,
        "ytick.labelsize": 7,
        "figure.dpi": 100,
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "savefig.dpi": PNG_DPI,
    }
)


def bits_color(bits) -> str:
    return BITS_COLORS.get(int(bits), "#999999")


def bits_name(bits) -> str:
    """Display name: FP16, INT8, ..., ternary."""
    label = bits_label(int(bits))
    return label if label == "ternary" else label.upper()


def sizes_in_order(sizes) -> list[str]:
    return sorted(set(sizes), key=size_to_number)


def facet_grid(n: int, panel_w: float = 1.75, panel_h: float = 1.5, sharey=True, max_cols: int = MAX_COLS):
    """n panels wrapped to at most max_cols columns; unused axes removed. Returns (fig, flat axes)."""
    rows = max(1, math.ceil(n / max_cols))
    cols = max(1, math.ceil(n / rows))  # balanced rows: 5 panels are 3 + 2, not 4 + 1
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(min(FULL_WIDTH, max(COLUMN_WIDTH, panel_w * cols + 0.8)), panel_h * rows + 0.7),
        sharey=sharey,
        squeeze=False,
        layout="constrained",
    )
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def bits_legend(fig, bits, **kw) -> None:
    """One legend entry per bit-width (same colour and marker as in every figure), above the panels."""
    handles = [plt.Line2D([], [], color=bits_color(b), marker=BITS_MARKERS.get(int(b), "o"), ms=4, lw=1) for b in bits]
    fig.legend(handles, [bits_name(b) for b in bits], loc="outside upper center", ncol=min(len(handles), 7), **kw)


def save(fig, pdf_path: str, png_path: str) -> list[str]:
    """Write PDF and PNG atomically; return (and log) the layout problems found (see layout.py)."""
    from .layout import layout_problems

    problems = layout_problems(fig)
    for p in problems:
        log.warning("%s: %s", Path(pdf_path).name, p)
    for path in (pdf_path, png_path):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=Path(path).suffix[1:], bbox_inches="tight", pad_inches=0.03)
    plt.close(fig)
    return problems


def phase_label(phase: str) -> str:
    """phase2 -> Phase 2, phase5-adamw -> Phase 5 (adamw)."""
    head, _, tail = str(phase).partition("-")
    head = head.replace("phase", "Phase ")
    return f"{head} ({tail})" if tail else head
