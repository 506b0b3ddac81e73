import pytest
import torch

from qatgrid.model import GPT, ModelConfig, count_params
from qatgrid.sizes import SIZES, size_to_number
from qatgrid.quant import QATLinear


@pytest.mark.parametrize("size", list(SIZES))
def test_total_param_count_within_10_percent_of_name(size):
    """Count: total parameters, tied embedding counted once, at the paper's vocab of 1024."""
    cfg = ModelConfig.from_size(size, vocab_size=1024, seq_len=16)
    with torch.device("meta"):
        n = count_params(GPT(cfg))
    assert abs(n / size_to_number(size) - 1) <= 0.10, (size, n)


def test_baseline_shape_and_gqa():
    cfg = ModelConfig(vocab_size=1024, n_layer=9, d_model=512, seq_len=1024)
    assert (cfg.n_head, cfg.n_kv_head) == (8, 4)
    with torch.device("meta"):
        model = GPT(cfg)
    assert 16.5e6 < count_params(model) < 17.5e6  # parameter-golf baseline, ~17M
    assert model.blocks[0].attn.kv.weight.shape == (2 * 4 * 64, 512)
    assert model.blocks[0].mlp.up.weight.shape == (1024, 512)


def test_forward_shapes_causality_and_quant_layers():
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_size("0.16M", vocab_size=97, seq_len=12, bits=6))
    for block in model.blocks:  # break the zero init so every path carries signal
        torch.nn.init.normal_(block.attn.proj.weight, std=0.05)
        torch.nn.init.normal_(block.mlp.down.weight, std=0.05)
    x = torch.randint(0, 97, (2, 12))
    logits = model(x)
    assert logits.shape == (2, 12, 97)
    assert logits.abs().max() <= 30.0  # soft-cap
    x2 = x.clone()
    x2[:, 7:] = (x2[:, 7:] + 1) % 97
    assert torch.allclose(model(x2)[:, :7], logits[:, :7], atol=1e-5)
    assert not torch.allclose(model(x2)[:, 7:], logits[:, 7:])
    qlayers = [m for m in model.modules() if isinstance(m, QATLinear)]
    assert len(qlayers) == 5 * 3 and all(m.bits == 6 for m in qlayers)
    loss = model(x, x)
    assert loss.ndim == 0 and 0 < loss.item() < 10


def test_unknown_size_lists_known_ones():
    with pytest.raises(KeyError, match="unknown model size '7M'; known sizes: 0.1M"):
        ModelConfig.from_size("7M", vocab_size=10, seq_len=4)
