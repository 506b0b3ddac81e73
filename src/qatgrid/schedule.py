"""A run's schedule: its steps, batch size, tokens and learning rate, from the `train` section.

Steps and batch size come from the run's length and batch-size axes (`total_steps`,
`run_batch_size`); the rules, the plan, the audit and training all read them here. The
learning-rate multiplier goes linear warmup -> constant -> warmdown to zero: the warmdown
covers the final `warmdown_frac` of the steps; its shape is linear (the baseline's) or cosine
(a Phase 5 arm). The step where warmdown starts is where the pre-warmdown checkpoint is taken.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runs import Run

SHAPES = ("linear", "cosine")
LR_BATCH_RULES = {"hold": 0.0, "sqrt": 0.5, "linear": 1.0}  # lr x (batch / train.batch_size) ** exponent


def run_batch_size(train_cfg: dict, run: Run) -> int:
    """Sequences per step: the run's batch_size axis, else train.batch_size."""
    return run.batch_size if run.batch_size is not None else train_cfg["batch_size"]


def run_data_seed(run: Run) -> int | None:
    """The run's level on the data-order axis; None off the axis: the default order of `train.batches`
    (stream: the baseline's order, the same for every init seed; random: windows keyed on the init seed)."""
    return run.data_seed


def scheduled_steps(train_cfg: dict, length_mult: float, batch_size: int | None = None) -> int:
    """Optimiser steps at a length multiple and batch size. With train.hold_tokens a run at another batch
    size keeps the token budget of train.steps x train.batch_size sequences, so its steps scale inversely."""
    steps = max(1, round(train_cfg["steps"] * length_mult))
    if batch_size is None or not train_cfg["hold_tokens"]:
        return steps
    return max(1, steps * train_cfg["batch_size"] // batch_size)


def total_steps(train_cfg: dict, run: Run) -> int:
    """Optimiser steps of one run."""
    return scheduled_steps(train_cfg, run.length_mult, run.batch_size)


def total_tokens(train_cfg: dict, run: Run) -> int:
    """Planned training tokens of one run (steps x sequences x sequence length)."""
    return total_steps(train_cfg, run) * run_batch_size(train_cfg, run) * train_cfg["seq_len"]


def lr_batch_factor(train_cfg: dict, run: Run) -> float:
    """LR multiplier for a run's batch size: (batch / train.batch_size) ** e, e from train.lr_batch_rule
    (hold: 0, sqrt: 0.5, linear: 1). 1 for runs at the default batch size."""
    exponent = LR_BATCH_RULES[train_cfg["lr_batch_rule"]]
    return (run_batch_size(train_cfg, run) / train_cfg["batch_size"]) ** exponent


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
