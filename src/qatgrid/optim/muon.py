"""Muon: momentum SGD whose update is orthogonalised by a quintic Newton-Schulz iteration.

The update rule is the parameter-golf baseline's (momentum buffer b <- m*b + g, Nesterov
update g + m*b, five Newton-Schulz steps, LR scaled by sqrt(max(1, rows/cols))). The one
difference from torch.optim.Muon is the precision of the iteration: torch.optim.Muon always
runs it in bf16, right on a GPU but 15-20x slower than fp32 on a CPU without native bf16
matmuls. Here the dtype is a choice (bf16 on CUDA, fp32 on CPU; see optim.ns_dtype_for).
"""

from __future__ import annotations

import torch

from .base import Optimizer

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(
    g: torch.Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype = torch.bfloat16
) -> torch.Tensor:
    """Approximately U V^T for g = U S V^T, computed in `dtype` (the quintic iteration of
    torch.optim.Muon, same operation order). Returns a tensor of `dtype`."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype)
    tall = g.size(0) > g.size(1)
    if tall:  # iterate on the wide orientation: the Gram matrix is the smaller one
        x = x.T
    x = x / x.norm().clamp(min=eps)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


class Muon(Optimizer):
    """Muon for 2-D parameters. `momentum` may be changed per step through the param groups
    (the baseline warms it up); `ns_dtype` is the precision of the Newton-Schulz iteration."""

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.95,
        nesterov: bool = True,
        ns_steps: int = 5,
        weight_decay: float = 0.0,
        ns_dtype: torch.dtype = torch.bfloat16,
    ):
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon takes 2-D parameters only, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            lr, m = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.mul_(m).add_(g)
                g = g.add(buf, alpha=m) if group["nesterov"] else buf
                update = newton_schulz(g, group["ns_steps"], dtype=self.ns_dtype)
                if group["weight_decay"]:
                    p.mul_(1 - lr * group["weight_decay"])
                p.add_(update.to(p.dtype), alpha=-lr * max(1.0, p.size(0) / p.size(1)) ** 0.5)
