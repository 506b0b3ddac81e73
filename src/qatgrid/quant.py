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

Low precision (bf16 or fp16 matmuls: autocast on a GPU). Casting the on-grid fp32 weight
code * scale to bf16 would round it to bf16's 8 significant bits: INT8 codes land up to half a
grid step off their level (on average 0.044 steps for 512 x 512 normal weights; INT6 0.011,
INT4 0.002). So there `GridLinear` gives the matmul the integer codes themselves, exact in bf16
up to 256 (fp16: 2048), and multiplies its output by the fp32 scale, per output row (ternary:
gamma, per tensor), casting the result back to the matmul's dtype: the effective weight is exactly
code * scale, and activations keep their dtype and size (the output is rounded twice, after the
matmul and after the scale, where the plain expression rounded it once). Its backward is the same
straight-through estimator, the gradients F.linear gives for the weight code * scale:
dL/dw = dL/dy^T x (the same bf16 kernel on the same operands) and dL/dx = dL/dy (scale * codes).
The scale never divides a gradient, so an all-zero row (a zero-initialised projection: tiny scale,
ternary gamma 0) still gets its whole gradient. In fp32 (the CPU default) the layer keeps the plain
expression, bitwise as before.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .runs import SUPPORTED_BITS

_TINY = torch.finfo(torch.float32).tiny
TERNARY = 1
TERNARY_EPS = 1e-5  # BitNet b1.58's epsilon in W / (gamma + eps)
LOW_PRECISION = (torch.bfloat16, torch.float16)  # integer codes up to 256 / 2048 are exact in these


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


def codes_and_scale(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The integer codes (in w's dtype) and the scale they multiply: per row (rows, 1), or ternary's gamma."""
    if bits == TERNARY:
        return ternary_codes(w), ternary_scale(w)
    s = row_scale(w, bits)
    return torch.clamp(torch.round(w / s), -qmax(bits), qmax(bits)), s


def quantize_rows(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The quantised weight (values on the grid), no gradient semantics."""
    codes, scale = codes_and_scale(w, bits)
    return codes * scale


def fake_quant(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Forward: quantize_rows(w). Backward: identity (straight-through estimator)."""
    if bits >= 16:
        return w
    return w + (quantize_rows(w, bits) - w).detach()


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype an op on autocast's lower-precision list (F.linear; on CUDA also attention) computes
    x in: autocast's where it is on for x's device, else x's own."""
    device = x.device.type  # autocast knows no "meta": shape-only tracing keeps x's dtype
    on = torch.amp.is_autocast_available(device) and torch.is_autocast_enabled(device)
    return torch.get_autocast_dtype(device) if on else x.dtype


class GridLinear(torch.autograd.Function):
    """y = (x @ codes^T) * scale in a low-precision dtype, with fake_quant's gradients (module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, bits: int, dtype: torch.dtype) -> torch.Tensor:
        codes, scale = codes_and_scale(w.detach(), bits)
        x_lp, codes_lp, scale = x.to(dtype), codes.to(dtype), scale.reshape(-1)  # integers: exact
        ctx.save_for_backward(x_lp, codes_lp, scale)
        ctx.dtypes = x.dtype, w.dtype
        return (F.linear(x_lp, codes_lp).float() * scale).to(dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        x_lp, codes_lp, scale = ctx.saved_tensors
        x_dtype, w_dtype = ctx.dtypes
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # dL/dy (scale * codes)
            grad_x = ((g.float() * scale).to(g.dtype) @ codes_lp).to(x_dtype)
        if ctx.needs_input_grad[1]:  # dL/dq, the straight-through dL/dw
            grad_w = (g.flatten(0, -2).T @ x_lp.flatten(0, -2)).to(w_dtype)
        return grad_x, grad_w, None, None


class QATLinear(nn.Linear):
    """nn.Linear (no bias) whose weight is fake-quantised on every forward pass."""

    def __init__(self, in_features: int, out_features: int, bits: int = 16):
        if bits not in SUPPORTED_BITS:
            raise ValueError(f"bits must be one of {SUPPORTED_BITS}, got {bits}")
        super().__init__(in_features, out_features, bias=False)
        self.bits = bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = compute_dtype(x)
        if self.bits < 16 and dtype in LOW_PRECISION:  # bf16 would round code * scale off the grid
            return GridLinear.apply(x, self.weight, self.bits, dtype)
        return F.linear(x, fake_quant(self.weight, self.bits).to(x.dtype))
