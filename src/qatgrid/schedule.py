"""Learning-rate multiplier: linear warmup -> constant -> warmdown to zero.

The warmdown covers the final `warmdown_frac` of the steps; its shape is
linear (the baseline's) or cosine (a Phase 5 arm). The step where warmdown
starts is where the pre-warmdown checkpoint is taken.
"""

from __future__ import annotations

import math

SHAPES = ("linear", "cosine")


def warmdown_start(total_steps: int, warmdown_frac: float) -> int:
    return total_steps - round(warmdown_frac * total_steps)


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, warmdown_frac: float, shape: str = "linear") -> float:
    """Multiplier applied to the base LR for the update made at `step` (0-based)."""
    if shape not in SHAPES:
        raise ValueError(f"schedule shape must be one of {SHAPES}, got {shape!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    start = warmdown_start(total_steps, warmdown_frac)
    if step < start:
        return 1.0
    progress = (step - start) / max(1, total_steps - start)  # 0 at the start, ->1 at the end
    if shape == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))
