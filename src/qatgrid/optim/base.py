"""The small optimiser base that Adam and Muon share: param groups, per-parameter state,
zero_grad and a state dict, without torch.optim (whose first use imports torch._dynamo; see
qatgrid.optim.adam)."""

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
