"""Optimisers: Muon for hidden matrices with Adam for the rest, or AdamW throughout.

As in the parameter-golf baseline, Muon updates the 2-D weights inside the
transformer blocks; the (tied) embedding/head goes to Adam with betas
(0.9, 0.95). The AdamW arm of Phase 5 trains every parameter with AdamW.
"""
from __future__ import annotations

import torch

OPTIMIZERS = ("muon", "adamw")
ADAM_BETAS = (0.9, 0.95)


def split_params(model: torch.nn.Module) -> tuple[list, list]:
    """(block matrices, everything else)."""
    matrices, other = [], []
    for name, p in model.named_parameters():
        (matrices if p.ndim == 2 and name.startswith("blocks.") else other).append(p)
    return matrices, other


def build_optimizers(model: torch.nn.Module, optimizer: str, lr: dict, lr_mult: float,
                     weight_decay: float) -> list[torch.optim.Optimizer]:
    """Each param group remembers its base LR in 'base_lr' so the schedule can scale it."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    matrices, other = split_params(model)
    if optimizer == "adamw":
        opt = torch.optim.AdamW([{"params": matrices + other}], lr=lr["adamw"] * lr_mult, betas=ADAM_BETAS,
                                weight_decay=weight_decay, fused=False)
        opts = [opt]
    else:
        muon = torch.optim.Muon(matrices, lr=lr["muon"] * lr_mult, momentum=0.95, nesterov=True,
                                weight_decay=weight_decay)
        adam = torch.optim.Adam(other, lr=lr["embed"] * lr_mult, betas=ADAM_BETAS)
        opts = [muon, adam]
    for opt in opts:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return opts


def set_lr(optimizers: list[torch.optim.Optimizer], multiplier: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * multiplier
