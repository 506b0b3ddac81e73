"""Adam (and AdamW), and the small optimiser base that Adam and Muon share.

Why not torch.optim: every torch.optim optimiser imports torch._dynamo (and with it sympy)
on first use -- `add_param_group`, `zero_grad`, `state_dict` and every `step` pass through
dynamo's wrappers -- which costs 1.2 s per process on a laptop CPU, a third of a whole
CPU-miniature training run. Training compiles the model at most, never the optimiser, so
nothing here needs dynamo. The update is torch.optim.Adam's, operation for operation
(tests/test_adam.py checks it bitwise against torch.optim.Adam and AdamW on CPU), and it
uses the multi-tensor `torch._foreach_*` kernels, as torch.optim does by default on GPUs.
"""

from __future__ import annotations

from collections import defaultdict

import torch


class Optimizer:
    """Param groups (a dict of hyper-parameters per group, changed in place by the schedule),
    per-parameter state, zero_grad, and a state dict that checkpoints restore by position."""

    def __init__(self, params, defaults: dict):
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.defaults = defaults
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in groups]
        self.state: defaultdict[torch.Tensor, dict] = defaultdict(dict)

    def parameters(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    def state_dict(self) -> dict:
        params = self.parameters()
        return {
            "state": {i: self.state[p] for i, p in enumerate(params) if p in self.state},
            "param_groups": [
                {**{k: v for k, v in group.items() if k != "params"}, "n_params": len(group["params"])}
                for group in self.param_groups
            ],
        }

    def load_state_dict(self, state_dict: dict) -> None:
        saved = [group["n_params"] for group in state_dict["param_groups"]]
        ours = [len(group["params"]) for group in self.param_groups]
        if saved != ours:
            raise ValueError(f"{type(self).__name__} state has param groups of sizes {saved}, this optimiser {ours}")
        for group, saved_group in zip(self.param_groups, state_dict["param_groups"]):
            group.update({k: v for k, v in saved_group.items() if k != "n_params"})
        params = self.parameters()
        self.state = defaultdict(
            dict,
            {
                params[i]: {k: v.to(params[i].device) if torch.is_tensor(v) else v for k, v in s.items()}
                for i, s in state_dict["state"].items()
            },
        )


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
