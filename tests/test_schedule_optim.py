import torch

from qatgrid.model import GPT, ModelConfig
from qatgrid.optim import build_optimizers, set_lr, split_params


def test_muon_gets_block_matrices_adam_the_embedding():
    model = GPT(ModelConfig.from_size("0.16M", vocab_size=64, seq_len=8))
    matrices, other = split_params(model)
    assert len(matrices) == 3 * 5 and all(p.ndim == 2 for p in matrices)
    assert len(other) == 1 and other[0] is model.embed.weight
    muon, adam = build_optimizers(model, "muon", {"muon": 0.02, "embed": 0.01, "adamw": 0.003}, 2.0, 0.0)
    assert isinstance(muon, torch.optim.Muon) and muon.param_groups[0]["lr"] == 0.04
    assert isinstance(adam, torch.optim.Adam) and adam.param_groups[0]["betas"] == (0.9, 0.95)
    set_lr([muon, adam], 0.5)
    assert (muon.param_groups[0]["lr"], adam.param_groups[0]["lr"]) == (0.02, 0.01)


def test_adamw_arm_trains_everything():
    model = GPT(ModelConfig.from_size("0.1M", vocab_size=64, seq_len=8))
    (opt,) = build_optimizers(model, "adamw", {"muon": 0.02, "embed": 0.01, "adamw": 0.003}, 1.0, 0.1)
    assert isinstance(opt, torch.optim.AdamW)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for p in model.parameters())
