"""Decoder-only transformer, block for block the parameter-golf baseline's (`train_gpt.py`).

RMSNorm on the embedding output (that normed embedding is x0), rotary embeddings,
grouped-query attention (half as many KV heads as query heads) with separate q/k/v
projections, QK-norm and a learned per-head query gain, squared-ReLU MLP with 2x
expansion, tied input/output embedding, tanh logit soft-cap. Each block mixes its input
from the running residual and x0 (`resid_mix`) and scales each branch's output per
channel (`attn_scale`, `mlp_scale`); the first half of the blocks store their outputs
and the second half add them back in reverse order, scaled by `skip_weights` (U-Net).

Every block matrix is a `QATLinear`, so one model serves FP16 and every fake-quantised
bit-width. The control tensors (scales, gains, mixes, skip weights) are fp32 and never
quantised, as in the baseline's export; `is_block_matrix` is the one place that says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .quant import QATLinear, compute_dtype
from .sizes import SIZES, head_counts

CONTROL_TENSOR_NAMES = ("attn_scale", "mlp_scale", "resid_mix", "q_gain", "skip_weights")
Q_GAIN_INIT = 1.5
TIED_EMBED_INIT_STD = 0.005


def is_block_matrix(name: str, ndim: int) -> bool:
    """A quantised weight (QATLinear inside a block), by its state_dict / named_parameters name."""
    return name.startswith("blocks.") and ndim == 2 and name.rsplit(".", 1)[-1] not in CONTROL_TENSOR_NAMES


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    n_layer: int
    d_model: int
    seq_len: int
    bits: int = 16
    logit_softcap: float = 30.0

    @property
    def n_head(self) -> int:
        return head_counts(self.d_model)[0]

    @property
    def n_kv_head(self) -> int:
        return head_counts(self.d_model)[1]

    @classmethod
    def from_size(cls, size: str, **kw) -> ModelConfig:
        if size not in SIZES:
            raise KeyError(f"unknown model size {size!r}; known sizes: {', '.join(SIZES)}")
        n_layer, d_model = SIZES[size]
        return cls(n_layer=n_layer, d_model=d_model, **kw)


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def softcap(logits: torch.Tensor, cap: float) -> torch.Tensor:
    """cap * tanh(logits / cap), in fp32, written as 2 cap sigmoid(2 logits / cap) - cap (the same
    function): the CPU tanh kernel is 10x slower than sigmoid's, and with a 1024-token vocabulary
    this one elementwise op was a fifth of a CPU-miniature training step. In fp32 the two forms
    agree to within a few ulp of cap (tests/test_model.py)."""
    return torch.sigmoid(logits.float() * (2.0 / cap)) * (2.0 * cap) - cap


def channel(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-channel fp32 control vector in x's dtype (bf16 under autocast)."""
    return v.to(x.dtype)


class Rotary(nn.Module):
    def __init__(self, head_dim: int, seq_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
        self.register_buffer("cos", angles.cos()[None, None], persistent=False)
        self.register_buffer("sin", angles.sin()[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, H, T, D)
        t = x.size(2)
        cos, sin = self.cos[:, :, :t].to(x.dtype), self.sin[:, :, :t].to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((x1 * cos + x2 * sin, -x1 * sin + x2 * cos), dim=-1)


def kv_expanded(device_type: str, dtype: torch.dtype, n_head: int, n_kv: int) -> bool:
    """Whether attention repeats each KV head for its query heads rather than pass enable_gqa: on
    CUDA in fp32 only. Flash and cuDNN attention take fp16/bf16 only and the memory-efficient kernel
    takes no enable_gqa, so fp32 grouped-query attention would fall to the math kernel, which
    materialises B·H·T² scores. CPU's flash kernel takes fp32 with enable_gqa; repeating there would
    sum dK/dV over each group in another order (not bitwise), so CPU keeps the enable_gqa call."""
    return device_type == "cuda" and dtype == torch.float32 and n_kv != n_head


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, expand_kv: bool) -> torch.Tensor:
    """Causal attention; query head h reads KV head h // (n_head / n_kv), enable_gqa's grouping."""
    n_head, n_kv = q.size(1), k.size(1)
    if expand_kv:
        k, v = k.repeat_interleave(n_head // n_kv, dim=1), v.repeat_interleave(n_head // n_kv, dim=1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=k.size(1) != n_head)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv, self.hd = cfg.n_head, cfg.n_kv_head, cfg.d_model // cfg.n_head
        self.q = QATLinear(cfg.d_model, self.n_head * self.hd, cfg.bits)
        self.k = QATLinear(cfg.d_model, self.n_kv * self.hd, cfg.bits)
        self.v = QATLinear(cfg.d_model, self.n_kv * self.hd, cfg.bits)
        self.proj = QATLinear(self.n_head * self.hd, cfg.d_model, cfg.bits)
        self.q_gain = nn.Parameter(torch.full((self.n_head,), Q_GAIN_INIT))
        self.rotary = Rotary(self.hd, cfg.seq_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.n_head, self.hd).transpose(1, 2)
        k = self.k(x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        v = self.v(x).view(b, t, self.n_kv, self.hd).transpose(1, 2)
        q, k = self.rotary(rms_norm(q)), self.rotary(rms_norm(k))  # QK-norm, then RoPE
        # QK-norm fixes the logits' scale; the learned gain lets each head sharpen it again.
        q = q * self.q_gain.to(q.dtype)[None, :, None, None]
        expand_kv = kv_expanded(q.device.type, compute_dtype(q), self.n_head, self.n_kv)
        y = causal_attention(q, k, v, expand_kv)
        return self.proj(y.transpose(1, 2).reshape(b, t, -1))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.up = QATLinear(cfg.d_model, 2 * cfg.d_model, cfg.bits)
        self.down = QATLinear(2 * cfg.d_model, cfg.d_model, cfg.bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.relu(self.up(x)).square())


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.attn, self.mlp = Attention(cfg), MLP(cfg)
        self.attn_scale = nn.Parameter(torch.ones(d))
        self.mlp_scale = nn.Parameter(torch.ones(d))
        # Row 0 weighs the running residual, row 1 the normed embedding x0: starts as "residual only".
        self.resid_mix = nn.Parameter(torch.stack((torch.ones(d), torch.zeros(d))))

    def forward(self, x: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        mix = channel(self.resid_mix, x)
        x = mix[0] * x + mix[1] * x0
        x = x + channel(self.attn_scale, x) * self.attn(rms_norm(x))
        return x + channel(self.mlp_scale, x) * self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.n_encoder = cfg.n_layer // 2
        self.n_decoder = cfg.n_layer - self.n_encoder
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.skip_weights = nn.Parameter(torch.ones(min(self.n_encoder, self.n_decoder), cfg.d_model))
        self._init_weights()

    def _init_weights(self) -> None:
        # Block matrices keep nn.Linear's default (uniform, bound 1/sqrt(fan_in)), as the baseline.
        nn.init.normal_(self.embed.weight, std=TIED_EMBED_INIT_STD)
        for block in self.blocks:
            # Zero-init output projections so each block starts as identity (baseline recipe).
            nn.init.zeros_(block.attn.proj.weight)
            nn.init.zeros_(block.mlp.down.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = x0 = rms_norm(self.embed(idx))
        skips = []
        for block in self.blocks[: self.n_encoder]:
            x = block(x, x0)
            skips.append(x)
        for i, block in enumerate(self.blocks[self.n_encoder :]):
            if skips:  # the last encoder output meets the first decoder block (U-Net)
                x = x + channel(self.skip_weights[i], x) * skips.pop()
            x = block(x, x0)
        logits = F.linear(rms_norm(x), self.embed.weight)
        logits = softcap(logits, self.cfg.logit_softcap)
        if targets is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
