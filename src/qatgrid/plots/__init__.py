"""Figures, each a function of tables only, saved as PDF (TrueType fonts) and PNG in one style
(`style.py`); `captions.py` turns the same tables into each figure's report caption."""

from .boundary import paired_z_by_size
from .boundary_map import boundary_map
from .optimal import optimal_warmdown_heatmap
from .penalty import penalty_law
from .probe import grid_distance
from .robustness import robustness
from .style import BITS_COLORS, save
from .warmdown import loss_vs_warmdown

__all__ = [
    "BITS_COLORS",
    "boundary_map",
    "grid_distance",
    "loss_vs_warmdown",
    "optimal_warmdown_heatmap",
    "paired_z_by_size",
    "penalty_law",
    "robustness",
    "save",
]
