"""Symmetric per-output-row fake quantisation with a straight-through estimator.

Convention (the parameter-golf export's, not torchao's): for a weight row w,
    qmax  = 2^(b-1) - 1
    scale = max|w| / qmax                       (absmax, one scale per output row)
    q(w)  = clamp(round(w / scale), -qmax, qmax) * scale
with round-half-to-even (torch.round). Codes are symmetric in [-qmax, qmax], so
at most 2^b - 1 levels are used and the clamp never bites: the STE gradient is
exactly the incoming gradient, dL/dw = dL/dq. bits == 16 means no fake quant
(the FP16 arm; training itself runs in fp32 on CPU, bf16 autocast on GPU).
INT3 (qmax 3) and INT2 (qmax 1: the grid {-s, 0, s}) follow the same convention.

Ternary (stored as bits == 1) is BitNet b1.58's: one absmean scale per tensor,
    gamma = mean|W|,   q(W) = gamma * clamp(round(W / (gamma + eps)), -1, 1),
with the same straight-through gradient (identity, also where the clamp bites,
as BitNet trains it).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .grid import SUPPORTED_BITS

_TINY = torch.finfo(torch.float32).tiny
TERNARY = 1
TERNARY_EPS = 1e-5  # BitNet b1.58's epsilon in W / (gamma + eps)


def qmax(bits: int) -> int:
    return 2 ** (bits - 1) - 1


def row_scale(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-row absmax scale, shape (rows, 1). All-zero rows get a tiny scale so they stay zero."""
    return (w.detach().abs().amax(dim=-1, keepdim=True) / qmax(bits)).clamp_min(_TINY)


def ternary_scale(w: torch.Tensor) -> torch.Tensor:
    """BitNet b1.58's per-tensor absmean scale gamma (a 0-d tensor)."""
    return w.detach().abs().mean()


def ternary_codes(w: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.round(w / (ternary_scale(w) + TERNARY_EPS)), -1, 1)


def quantize_rows(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantised weight (values on the grid), no gradient semantics."""
    if bits == TERNARY:
        return ternary_codes(w) * ternary_scale(w)
    s = row_scale(w, bits)
    return torch.clamp(torch.round(w / s), -qmax(bits), qmax(bits)) * s


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Forward: quantize_rows(w). Backward: identity (straight-through estimator)."""
    if bits >= 16:
        return w
    return w + (quantize_rows(w, bits) - w).detach()


class QATLinear(nn.Linear):
    """nn.Linear (no bias) whose weight is fake-quantised on every forward pass."""

    def __init__(self, in_features: int, out_features: int, bits: int = 16):
        if bits not in SUPPORTED_BITS:
            raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")
        super().__init__(in_features, out_features, bias=False)
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, fake_quant(self.weight, self.bits).to(x.dtype))
