"""Optimisers: the baseline's three groups, or AdamW throughout.

As in the parameter-golf baseline, Muon updates the block matrices; the control tensors
(scales, gains, residual mixes, skip weights) go to Adam at their own LR, and the tied
embedding/head to Adam at another, all Adam with betas (0.9, 0.95) and eps 1e-8. Muon's
momentum warms up linearly (0.85 -> 0.95 over 500 steps in the baseline); `set_step`
sets LR and momentum for each step. The AdamW arm of Phase 5 trains every parameter with
AdamW.
"""

from __future__ import annotations

import torch

from ..model import is_block_matrix
from .adam import Adam
from .base import Optimizer
from .muon import Muon

OPTIMIZERS = ("muon", "adamw")
ADAM_BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
MOMENTUM_DEFAULT = {"start": 0.85, "end": 0.95, "warmup_steps": 500}  # the baseline's


def split_params(model: torch.nn.Module) -> tuple[list, list, list]:
    """(block matrices, control tensors, embedding): Muon, Adam at lr.scalar, Adam at lr.embed."""
    matrices, control, embed = [], [], []
    for name, p in model.named_parameters():
        if is_block_matrix(name, p.ndim):
            matrices.append(p)
        elif name == "embed.weight":
            embed.append(p)
        else:
            control.append(p)
    return matrices, control, embed


def ns_dtype_for(device: torch.device) -> torch.dtype:
    """Newton-Schulz precision: bf16 on CUDA (the baseline's), fp32 elsewhere (CPUs without
    native bf16 matmuls run bf16 15-20x slower than fp32)."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def build_optimizers(
    model: torch.nn.Module, optimizer: str, lr: dict, lr_mult: float, weight_decay: float
) -> list[Optimizer]:
    """Each param group remembers its base LR in 'base_lr' so the schedule can scale it."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    matrices, control, embed = split_params(model)
    if optimizer == "adamw":
        opts = [
            Adam(
                matrices + control + embed,
                lr=lr["adamw"] * lr_mult,
                betas=ADAM_BETAS,
                eps=ADAM_EPS,
                weight_decay=weight_decay,
            )
        ]
    else:
        muon = Muon(
            matrices,
            lr=lr["muon"] * lr_mult,
            momentum=MOMENTUM_DEFAULT["end"],
            nesterov=True,
            weight_decay=weight_decay,
            ns_dtype=ns_dtype_for(matrices[0].device),
        )
        adam = Adam(
            [{"params": embed, "lr": lr["embed"] * lr_mult}, {"params": control, "lr": lr["scalar"] * lr_mult}],
            lr=lr["embed"] * lr_mult,
            betas=ADAM_BETAS,
            eps=ADAM_EPS,
        )
        opts = [muon, adam]
    for opt in opts:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return opts


def muon_momentum(step: int, schedule: dict) -> float:
    """Linear warmup from schedule['start'] to schedule['end'] over schedule['warmup_steps'] steps."""
    frac = min(step / schedule["warmup_steps"], 1.0) if schedule["warmup_steps"] > 0 else 1.0
    return (1 - frac) * schedule["start"] + frac * schedule["end"]


def set_lr(optimizers: list[Optimizer], multiplier: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * multiplier


def set_step(optimizers: list[Optimizer], lr_mult: float, step: int, momentum: dict) -> None:
    """Everything that changes per step: the LR multiplier, and Muon's momentum."""
    set_lr(optimizers, lr_mult)
    for opt in optimizers:
        if isinstance(opt, Muon):
            for group in opt.param_groups:
                group["momentum"] = muon_momentum(step, momentum)


def ns_precision(optimizers: list[Optimizer]) -> str | None:
    """The Newton-Schulz dtype of the run's Muon ('float32' / 'bfloat16'), None without Muon."""
    for opt in optimizers:
        if isinstance(opt, Muon):
            return str(opt.ns_dtype).removeprefix("torch.")
    return None
