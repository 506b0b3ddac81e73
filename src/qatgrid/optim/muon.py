"""Muon: momentum SGD whose update is orthogonalised by a quintic Newton-Schulz iteration.

The update rule is the parameter-golf baseline's (momentum buffer b <- m*b + g, Nesterov
update g + m*b, five Newton-Schulz steps, LR scaled by sqrt(max(1, rows/cols))). The dtype of
the iteration is a choice (bf16 on CUDA, fp32 on CPU; see optim.ns_dtype_for): torch.optim.Muon
always runs it in bf16, right on a GPU but 15-20x slower than fp32 on a CPU without native bf16
matmuls. In bf16 the iteration is the baseline's `zeropower_via_newtonschulz5`, operation for
operation (three separate products per step), so it rounds as the baseline does; a fused addmm
(torch.optim.Muon's order) rounds differently in bf16, its updates ~1% smaller in norm.
"""

from __future__ import annotations

import torch

from .base import Optimizer

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(
    g: torch.Tensor, steps: int = 5, eps: float = 1e-7, dtype: torch.dtype = torch.bfloat16
) -> torch.Tensor:
    """Approximately U V^T for g = U S V^T, computed in `dtype`. Returns a tensor of `dtype`.
    bf16: the baseline's operation order (newton_schulz_baseline); otherwise the quintic
    iteration with fused addmm products (torch.optim.Muon's order)."""
    if dtype == torch.bfloat16:
        return newton_schulz_baseline(g, steps, eps)
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


def newton_schulz_baseline(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """The parameter-golf baseline's bf16 iteration, in its order of operations: normalise by
    (Frobenius norm + eps) in bf16, iterate on the wide orientation, and per step
    A = X X^T, B = b A + (c A) A, X = a X + B X, each product a separate bf16 matmul."""
    a, b, c = NS_COEFFICIENTS
    x = g.bfloat16()
    x = x / (x.norm() + eps)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        poly = b * gram + c * gram @ gram  # (c * A) @ A, as Python evaluates the baseline's expression
        x = a * x + poly @ x
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
