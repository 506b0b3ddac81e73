"""Adam (and AdamW), on the optimiser base of qatgrid.optim.base.

Why not torch.optim: every torch.optim optimiser imports torch._dynamo (and with it sympy)
on first use -- `add_param_group`, `zero_grad`, `state_dict` and every `step` pass through
dynamo's wrappers -- which costs 1.2 s per process on a laptop CPU, a third of a whole
CPU-miniature training run. Training compiles the model at most, never the optimiser, so
nothing here needs dynamo. The update is torch.optim.Adam's, operation for operation
(tests/test_adam.py checks it bitwise against torch.optim.Adam and AdamW on CPU), and it
uses the multi-tensor `torch._foreach_*` kernels, as torch.optim does by default on GPUs.
"""

from __future__ import annotations

import torch

from .base import Optimizer


class Adam(Optimizer):
    """Adam with bias correction; weight decay, when set, is decoupled (AdamW)."""

    def __init__(
        self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0
    ):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in params:
                if not self.state[p]:
                    self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                self.state[p]["step"] += 1
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            exp_avg, exp_avg_sq = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
            if decay:
                torch._foreach_mul_(params, 1 - lr * decay)
            torch._foreach_lerp_(exp_avg, grads, 1 - beta1)  # m <- b1 m + (1 - b1) g
            torch._foreach_mul_(exp_avg_sq, beta2)  # v <- b2 v + (1 - b2) g^2
            torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1 - beta2)
            # p <- p - lr m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps)
            denom = torch._foreach_sqrt(exp_avg_sq)
            torch._foreach_div_(denom, [(1 - beta2 ** s["step"]) ** 0.5 for s in states])
            torch._foreach_add_(denom, eps)
            torch._foreach_addcdiv_(params, exp_avg, denom, [-lr / (1 - beta1 ** s["step"]) for s in states])
