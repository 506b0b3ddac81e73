"""Decoder-only transformer in the shape of the parameter-golf baseline.

RMSNorm, rotary embeddings, grouped-query attention (half as many KV heads as
query heads), squared-ReLU MLP with 2x expansion, tied input/output embedding,
tanh logit soft-cap. Every Linear is a `QATLinear`, so one model serves FP16
and every fake-quantised bit-width.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .quant import QATLinear
from .sizes import HEAD_DIM, SIZES


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
        return max(1, self.d_model // HEAD_DIM)

    @property
    def n_kv_head(self) -> int:
        return max(1, self.n_head // 2)

    @classmethod
    def from_size(cls, size: str, **kw) -> "ModelConfig":
        if size not in SIZES:
            raise KeyError(f"unknown model size {size!r}; known sizes: {', '.join(SIZES)}")
        n_layer, d_model = SIZES[size]
        return cls(n_layer=n_layer, d_model=d_model, **kw)


def rms_norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


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


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head, self.n_kv, self.hd = cfg.n_head, cfg.n_kv_head, cfg.d_model // cfg.n_head
        self.q = QATLinear(cfg.d_model, self.n_head * self.hd, cfg.bits)
        self.kv = QATLinear(cfg.d_model, 2 * self.n_kv * self.hd, cfg.bits)
        self.proj = QATLinear(self.n_head * self.hd, cfg.d_model, cfg.bits)
        self.rotary = Rotary(self.hd, cfg.seq_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, self.n_head, self.hd).transpose(1, 2)
        k, v = self.kv(x).view(b, t, 2, self.n_kv, self.hd).permute(2, 0, 3, 1, 4)
        q, k = self.rotary(rms_norm(q)), self.rotary(rms_norm(k))  # QK-norm as in the baseline
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
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
        self.attn, self.mlp = Attention(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(rms_norm(x))
        return x + self.mlp(rms_norm(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.embed.weight, std=0.5 / self.cfg.d_model ** 0.5)
        for block in self.blocks:
            for lin in (block.attn.q, block.attn.kv, block.mlp.up):
                nn.init.normal_(lin.weight, std=lin.in_features ** -0.5)
            # Zero-init output projections so each block starts as identity (baseline recipe).
            nn.init.zeros_(block.attn.proj.weight)
            nn.init.zeros_(block.mlp.down.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        logits = F.linear(rms_norm(x), self.embed.weight)
        cap = self.cfg.logit_softcap
        logits = cap * torch.tanh(logits / cap)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
