import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from qatgrid.model import (
    CONTROL_TENSOR_NAMES,
    GPT,
    Attention,
    ModelConfig,
    causal_attention,
    count_params,
    is_block_matrix,
    kv_expanded,
    rms_norm,
    softcap,
)
from qatgrid.quant import QATLinear
from qatgrid.sizes import SIZES, size_to_number


@pytest.mark.parametrize("size", list(SIZES))
def test_total_param_count_within_10_percent_of_name(size):
    """Count: total parameters, tied embedding counted once, at the paper's vocab of 1024."""
    cfg = ModelConfig.from_size(size, vocab_size=1024, seq_len=16)
    with torch.device("meta"):
        n = count_params(GPT(cfg))
    assert abs(n / size_to_number(size) - 1) <= 0.10, (size, n)


def test_baseline_parameter_count_by_hand():
    """parameter-golf baseline: 9 blocks x 512, 8 query / 4 KV heads of 64, MLP x2, vocab 1024, tied."""
    d, layers, heads, kv_heads, hd, vocab = 512, 9, 8, 4, 64, 1024
    matrices = d * heads * hd + 2 * d * kv_heads * hd + heads * hd * d + 2 * (d * 2 * d)  # q, k, v, proj, fc, proj
    control = d + d + 2 * d + heads  # attn_scale, mlp_scale, resid_mix (2 x d), q_gain
    skips = (layers // 2) * d  # 4 encoder blocks feed 4 of the 5 decoder blocks
    expected = layers * (matrices + control) + vocab * d + skips
    assert expected == 17_059_912  # the count the baseline logs as model_params
    cfg = ModelConfig(vocab_size=vocab, n_layer=layers, d_model=d, seq_len=1024)
    assert (cfg.n_head, cfg.n_kv_head) == (heads, kv_heads)
    with torch.device("meta"):
        model = GPT(cfg)
    assert count_params(model) == expected
    attn = model.blocks[0].attn
    assert [attn.q.weight.shape, attn.k.weight.shape, attn.v.weight.shape, attn.proj.weight.shape] == [
        (512, 512),
        (256, 512),
        (256, 512),
        (512, 512),
    ]
    assert model.blocks[0].mlp.up.weight.shape == (1024, 512) and model.blocks[0].mlp.down.weight.shape == (512, 1024)
    assert model.skip_weights.shape == (4, 512) and model.blocks[0].resid_mix.shape == (2, 512)
    assert attn.q_gain.shape == (8,)


def test_control_tensors_fp32_initialised_as_baseline_and_not_quantised():
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_size("0.2M", vocab_size=1024, seq_len=16, bits=4))
    quantised = {n for n, m in model.named_modules() if isinstance(m, QATLinear)}
    assert quantised == {
        f"blocks.{i}.{m}" for i in range(4) for m in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp.up", "mlp.down")
    }
    matrices = {n for n, p in model.named_parameters() if is_block_matrix(n, p.ndim)}
    assert matrices == {n + ".weight" for n in quantised}
    control = {n: p for n, p in model.named_parameters() if n.rsplit(".", 1)[-1] in CONTROL_TENSOR_NAMES}
    assert len(control) == 4 * 4 + 1 and all(p.dtype == torch.float32 for p in control.values())
    b = model.blocks[1]
    assert torch.equal(b.attn.q_gain, torch.full((1,), 1.5)) and torch.equal(b.attn_scale, torch.ones(64))
    assert torch.equal(b.resid_mix, torch.stack((torch.ones(64), torch.zeros(64))))
    assert torch.equal(model.skip_weights, torch.ones(2, 64))
    assert abs(model.embed.weight.std().item() - 0.005) < 0.0002  # tied-embedding init std
    assert not b.attn.proj.weight.any() and not b.mlp.down.weight.any()  # zero-init output projections


def test_unet_skips_and_x0_mix_are_wired():
    """Changing a skip weight changes the output only through the decoder; resid_mix row 1 feeds x0 in."""
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_size("0.2M", vocab_size=50, seq_len=8))
    for block in model.blocks:
        torch.nn.init.normal_(block.attn.proj.weight, std=0.05)
        torch.nn.init.normal_(block.mlp.down.weight, std=0.05)
    x = torch.randint(0, 50, (2, 8))
    with torch.no_grad():
        base = model(x)
        model.skip_weights[1].zero_()  # the first encoder output, added before the last decoder block
        no_skip = model(x)
        h = model.blocks[0](rms_norm(model.embed(x)), rms_norm(model.embed(x)))
        model.blocks[0].resid_mix[0].zero_()
        model.blocks[0].resid_mix[1].fill_(1.0)  # now the block's input is x0 alone: same as before here
        assert torch.allclose(model.blocks[0](rms_norm(model.embed(x)), rms_norm(model.embed(x))), h)
        model.blocks[0].resid_mix[1].zero_()  # no input at all: the block adds zero-input branches
        assert not torch.allclose(model.blocks[0](rms_norm(model.embed(x)), rms_norm(model.embed(x))), h)
    assert not torch.allclose(base, no_skip)


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
    assert len(qlayers) == 6 * 3 and all(m.bits == 6 for m in qlayers)
    loss = model(x, x)
    assert loss.ndim == 0 and 0 < loss.item() < 10


def test_softcap_is_cap_tanh_in_value_and_gradient():
    x = torch.cat([torch.linspace(-300, 300, 2001), torch.randn(1000) * 5]).double().requires_grad_()
    ref = 30.0 * torch.tanh(x / 30.0)  # the baseline's form, in float64
    (grad_ref,) = torch.autograd.grad(ref.sum(), x)
    x32 = x.detach().float().requires_grad_()
    ours = softcap(x32, 30.0)
    (grad,) = torch.autograd.grad(ours.sum(), x32)
    assert ours.dtype == torch.float32
    assert (ours.double() - ref).abs().max() < 8 * 30.0 * torch.finfo(torch.float32).eps  # a few ulp of the cap
    assert (grad.double() - grad_ref).abs().max() < 1e-5
    assert ours.abs().max() <= 30.0 and softcap(torch.tensor([1e9, -1e9]), 30.0).tolist() == [30.0, -30.0]
    assert softcap(torch.tensor([0.0]), 30.0).item() == 0.0


def test_unknown_size_lists_known_ones():
    with pytest.raises(KeyError, match="unknown model size '7M'; known sizes: 0.1M"):
        ModelConfig.from_size("7M", vocab_size=10, seq_len=4)


# (batch, query heads, KV heads, tokens): the head counts of widths 256, 512 (the baseline's) and 1536
@pytest.mark.parametrize("b, n_head, n_kv, t", [(2, 4, 2, 16), (2, 8, 4, 64), (1, 24, 12, 32), (3, 6, 3, 17)])
def test_repeated_kv_heads_equal_enable_gqa(b, n_head, n_kv, t):
    gen = torch.Generator().manual_seed(n_head)
    q, k, v = (torch.randn(b, h, t, 64, generator=gen) for h in (n_head, n_kv, n_kv))
    g = torch.randn(b, n_head, t, 64, generator=gen)
    results = []
    for expand_kv in (False, True):
        leaves = [a.clone().requires_grad_(True) for a in (q, k, v)]
        y = causal_attention(*leaves, expand_kv)
        y.backward(g)
        results.append((y, *(a.grad for a in leaves)))
    (y, dq, dk, dv), (y_rep, dq_rep, dk_rep, dv_rep) = results
    assert torch.equal(y_rep, y) and torch.equal(dq_rep, dq)  # the same grouping, bitwise
    # dK and dV sum over each group's query heads, in another order: equal within fp32 rounding
    for rep, ref in ((dk_rep, dk), (dv_rep, dv)):
        torch.testing.assert_close(rep, ref, rtol=0, atol=4 * torch.finfo(torch.float32).eps * ref.abs().max().item())


def test_kv_heads_are_repeated_on_cuda_in_fp32_only():
    assert kv_expanded("cuda", torch.float32, 8, 4)  # else the math kernel: B·H·T² scores
    assert not kv_expanded("cuda", torch.bfloat16, 8, 4)  # flash / cuDNN take enable_gqa
    assert not kv_expanded("cuda", torch.float32, 1, 1)  # no grouped heads
    assert not kv_expanded("cpu", torch.float32, 8, 4)  # CPU flash takes fp32 with enable_gqa


class AttentionKernels(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.kv_heads = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "scaled_dot_product" in func.overloadpacket.__name__:
            self.kv_heads.append((args[0].size(1), args[1].size(1), args[2].size(1)))
        return func(*args, **(kwargs or {}))


def test_cpu_attention_keeps_its_grouped_kv_heads():
    attn = Attention(ModelConfig(vocab_size=16, n_layer=1, d_model=512, seq_len=8))
    with AttentionKernels() as mode:
        attn(torch.randn(2, 8, 512))
    assert mode.kv_heads == [(8, 4, 4)]  # enable_gqa's call, as before: CPU results unchanged
