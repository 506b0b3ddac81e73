import io
import subprocess
import sys

import pytest
import torch

from qatgrid.optim.adam import Adam


def make_params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in ((16, 32), (32,), (5, 7, 3))]


def run(make_opt, steps: int, lrs=(0.01, 0.03), state=None):
    """Two param groups, the LR changed every step as the schedule does; gradients from a fixed stream."""
    params = make_params(0)
    opt = make_opt([{"params": params[:1], "lr": lrs[0]}, {"params": params[1:], "lr": lrs[1]}])
    if state is not None:
        for p, saved in zip(params, state["params"]):
            p.data.copy_(saved)
        opt.load_state_dict(state["opt"])
    g = torch.Generator().manual_seed(1 if state is None else 2)
    for i in range(steps):
        for group, lr in zip(opt.param_groups, lrs):
            group["lr"] = lr * (1 - i / (2 * steps))
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return params, opt


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_bitwise_equal_to_torch_adam_and_adamw(decay):
    kw = dict(betas=(0.9, 0.95), eps=1e-8, weight_decay=decay)
    ours, _ = run(lambda groups: Adam(groups, lr=0.0, **kw), steps=12)
    ref_cls = torch.optim.AdamW if decay else torch.optim.Adam
    theirs, _ = run(lambda groups: ref_cls(groups, lr=0.0, foreach=False, **kw), steps=12)
    start = make_params(0)
    for p0, a, b in zip(start, ours, theirs):
        assert (b - p0).abs().max() > 1e-2  # the reference really moved
        assert torch.equal(a, b)


def test_state_dict_round_trip_resumes_bitwise():
    """5 steps, a checkpoint through torch.save, 5 more in a new optimiser == 10 steps straight (the second
    half's gradients come from their own stream in both)."""
    kw = dict(betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    first, opt = run(lambda groups: Adam(groups, lr=0.0, **kw), steps=5)
    saved = {"params": [p.detach().clone() for p in first], "opt": opt.state_dict()}
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    resumed, opt2 = run(lambda groups: Adam(groups, lr=0.0, **kw), steps=5, state=torch.load(buffer))
    straight, _ = run(lambda groups: Adam(groups, lr=0.0, **kw), steps=5, state=saved)
    assert all(torch.equal(a, b) for a, b in zip(resumed, straight))
    assert [s["step"] for s in opt2.state.values()] == [10, 10, 10]
    assert opt2.param_groups[0]["betas"] == (0.9, 0.95)


def test_load_state_dict_names_mismatched_groups():
    _, opt = run(lambda groups: Adam(groups, lr=0.0), steps=1)
    other = Adam(make_params(0), lr=0.1)
    with pytest.raises(ValueError, match=r"Adam state has param groups of sizes \[1, 2\], this optimiser \[3\]"):
        other.load_state_dict(opt.state_dict())


def test_zero_grad_clears_or_zeroes():
    params = make_params(0)
    opt = Adam(params, lr=0.1)
    for p in params:
        p.grad = torch.ones_like(p)
    opt.zero_grad(set_to_none=False)
    assert all(torch.equal(p.grad, torch.zeros_like(p)) for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_eager_training_never_imports_dynamo():
    """The reason this optimiser exists: a CPU training step (Muon + Adam, and the AdamW arm) must not pull
    in torch._dynamo, 1.2 s of imports per training process."""
    code = """
import sys, torch
from qatgrid.model import GPT, ModelConfig
from qatgrid.optim import build_optimizers
from qatgrid.train import train_step
x = torch.randint(0, 64, (2, 8))
for arm in ("muon", "adamw"):
    model = GPT(ModelConfig.from_size("0.1M", vocab_size=64, seq_len=8, bits=6))
    opts = build_optimizers(model, arm, {"muon": 0.02, "embed": 0.02, "scalar": 0.02, "adamw": 0.003}, 1.0, 0.0)
    train_step(model, list(model.parameters()), opts, x, x, None, 1.0)
    [o.state_dict() for o in opts]
print(sorted(m for m in ("torch._dynamo", "sympy") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
