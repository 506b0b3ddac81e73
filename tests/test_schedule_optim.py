import pytest
import torch

from qatgrid.model import GPT, ModelConfig
from qatgrid.optim import build_optimizers, muon_momentum, ns_precision, set_lr, set_step, split_params
from qatgrid.optim.adam import Adam
from qatgrid.optim.muon import Muon

LR = {"muon": 0.02, "embed": 0.01, "scalar": 0.03, "adamw": 0.003}
BASELINE_MOMENTUM = {"start": 0.85, "end": 0.95, "warmup_steps": 500}


def test_muon_gets_block_matrices_adam_the_control_tensors_and_embedding():
    model = GPT(ModelConfig.from_size("0.16M", vocab_size=64, seq_len=8))
    matrices, control, embed = split_params(model)
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in matrices) == sorted(
        f"blocks.{i}.{m}.weight"
        for i in range(3)
        for m in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.up", "mlp.down")
    )
    assert sorted(names[id(p)] for p in control) == sorted(
        [f"blocks.{i}.{t}" for i in range(3) for t in ("attn_scale", "mlp_scale", "resid_mix", "attn.q_gain")]
        + ["skip_weights"]
    )
    assert len(embed) == 1 and embed[0] is model.embed.weight
    muon, adam = build_optimizers(model, "muon", LR, 2.0, 0.0)
    assert isinstance(muon, Muon) and muon.param_groups[0]["lr"] == 0.04
    assert muon.ns_dtype == torch.float32 and ns_precision([muon, adam]) == "float32"  # CPU
    embed_group, control_group = adam.param_groups
    assert embed_group["params"] == embed and embed_group["lr"] == 0.02
    assert control_group["params"] == control and control_group["lr"] == 0.06
    assert adam.defaults["betas"] == (0.9, 0.95) and adam.defaults["eps"] == 1e-8
    set_lr([muon, adam], 0.5)
    assert (muon.param_groups[0]["lr"], embed_group["lr"], control_group["lr"]) == (0.02, 0.01, 0.03)


def test_adamw_arm_trains_everything():
    model = GPT(ModelConfig.from_size("0.1M", vocab_size=64, seq_len=8))
    (opt,) = build_optimizers(model, "adamw", LR, 1.0, 0.1)
    assert isinstance(opt, Adam) and opt.param_groups[0]["weight_decay"] == 0.1 and ns_precision([opt]) is None
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("step, expected", [(0, 0.85), (250, 0.90), (500, 0.95), (1000, 0.95)])
def test_momentum_warmup_as_baseline(step, expected):
    assert muon_momentum(step, BASELINE_MOMENTUM) == pytest.approx(expected, abs=1e-12)


def test_set_step_sets_lr_and_muon_momentum_only():
    model = GPT(ModelConfig.from_size("0.1M", vocab_size=64, seq_len=8))
    muon, adam = build_optimizers(model, "muon", LR, 1.0, 0.0)
    set_step([muon, adam], 0.25, 100, BASELINE_MOMENTUM)
    assert muon.param_groups[0]["momentum"] == pytest.approx(0.87)
    assert muon.param_groups[0]["lr"] == pytest.approx(0.005) and adam.param_groups[1]["lr"] == pytest.approx(0.0075)
    assert "momentum" not in adam.param_groups[0]
    assert muon_momentum(3, {"start": 0.85, "end": 0.95, "warmup_steps": 0}) == 0.95
