"""Fake quantisation under bf16 autocast (the GPU's precision, run here on CPU): the matmul kernel
receives the integer codes and the fp32 scale multiplies its output, so every effective weight is
exactly on its grid level, with the straight-through gradients of the fp32 path; fp32 is bitwise
the plain expression it always was."""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from qatgrid.quant import QATLinear, codes_and_scale, quantize_rows

BF16 = torch.bfloat16
QUANTISED = (8, 6, 4, 3, 2, 1)  # 1: ternary
MATMULS = ("mm", "addmm", "bmm")


class KernelCalls(TorchDispatchMode):
    """Every aten call below autograd and autocast: the operands the kernels really receive."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.calls.append((func.overloadpacket.__name__, args, out))
        return out


def bf16_forward(forward, x: torch.Tensor) -> tuple[torch.Tensor, list]:
    with KernelCalls() as mode, torch.autocast("cpu", dtype=BF16):
        y = forward(x)
    return y, mode.calls


def effective_weight(calls: list, out_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(the matmul's weight operand as (out, in), that operand times every per-output-row scale
    multiplied onto the matmul's result afterwards, in fp32)."""
    mms = [i for i, (name, _, _) in enumerate(calls) if name in MATMULS]
    assert len(mms) == 1, [c[0] for c in calls]
    name, args, _ = calls[mms[0]]
    operand = args[-1].T  # mm(x, W^T)
    scale = torch.ones(out_features)
    for name, args, _ in calls[mms[0] + 1 :]:
        if name == "mul":
            vectors = [a for a in args if isinstance(a, torch.Tensor) and a.dim() == 1]
            assert len(vectors) == 1 and vectors[0].dtype == torch.float32
            scale = scale * vectors[0]
    return operand, operand.float() * scale[:, None]


def todays_forward(x: torch.Tensor, w: torch.Tensor, bits: int) -> torch.Tensor:
    """QATLinear.forward before low precision took the codes, quantiser written out as it was."""
    if bits < 16:
        if bits == 1:
            gamma = w.detach().abs().mean()
            q = torch.clamp(torch.round(w / (gamma + 1e-5)), -1, 1) * gamma
        else:
            qmax = 2 ** (bits - 1) - 1
            s = (w.detach().abs().amax(dim=-1, keepdim=True) / qmax).clamp_min(torch.finfo(torch.float32).tiny)
            q = torch.clamp(torch.round(w / s), -qmax, qmax) * s
        w = w + (q - w).detach()
    return F.linear(x, w.to(x.dtype))


def grid_step(w: torch.Tensor, bits: int) -> torch.Tensor:
    return codes_and_scale(w, bits)[1].expand_as(w)


def layer(n_in: int, n_out: int, bits: int, seed: int) -> QATLinear:
    torch.manual_seed(seed)
    return QATLinear(n_in, n_out, bits)  # nn.Linear's init: uniform, bound 1/sqrt(n_in)


def off_grid(bits: int, n: int = 512) -> tuple[float, float]:
    """Mean and max distance (grid steps) of the plain expression's bf16 weight operand from its
    level, for standard normal n x n weights."""
    w = torch.randn(n, n, generator=torch.Generator().manual_seed(0))
    _, calls = bf16_forward(lambda x: todays_forward(x, w, bits), torch.randn(4, n))
    _, weight = effective_weight(calls, n)
    steps = ((weight - quantize_rows(w, bits)) / grid_step(w, bits)).abs()
    return steps.mean().item(), steps.max().item()


@pytest.mark.parametrize("bits", QUANTISED)
def test_bf16_matmul_weight_is_exactly_on_the_grid(bits):
    lin = layer(512, 512, bits, seed=bits)
    w = lin.weight.detach()
    y, calls = bf16_forward(lin, torch.randn(2, 8, 512, generator=torch.Generator().manual_seed(1)))
    operand, weight = effective_weight(calls, 512)
    codes, _ = codes_and_scale(w, bits)
    assert operand.dtype == BF16 and y.dtype == BF16  # the product runs in bf16, activations stay bf16
    assert torch.equal(operand.float(), codes)  # the integer codes themselves
    assert torch.equal(weight, quantize_rows(w, bits))  # code * scale: 0 weights off the grid
    assert len(codes.unique()) == (3 if bits == 1 else 2**bits - 1)  # every level in use


def test_todays_bf16_expression_is_off_the_grid():
    figures = {bits: off_grid(bits) for bits in (8, 6, 4)}
    print("off-grid (grid steps, mean / max) of code * scale cast to bf16:", figures)
    mean8, max8 = figures[8]  # measured 0.044 / 0.39; INT6 0.011 / 0.096, INT4 0.0023 / 0.022
    assert mean8 > 0.01 and max8 > 0.3  # INT8 codes up to half a step off: 8 significant bits
    assert figures[6][0] > 0.002 and figures[4][0] > 0  # fewer levels, smaller but nonzero


def bf16_grads(forward, x: torch.Tensor, w: torch.Tensor, g: torch.Tensor):
    x = x.clone().requires_grad_(True)
    w.grad = None
    with torch.autocast("cpu", dtype=BF16):
        y = forward(x)
    y.backward(g)
    return y, x.grad, w.grad.clone()


@pytest.mark.parametrize("bits", QUANTISED)
def test_bf16_gradients_are_the_straight_through_ones(bits):
    lin = layer(256, 96, bits, seed=10 + bits)
    gen = torch.Generator().manual_seed(2)
    x, g = torch.randn(3, 7, 256, generator=gen), torch.randn(3, 7, 96, generator=gen).to(BF16)
    _, gx, gw = bf16_grads(lin, x, lin.weight, g)
    _, gx_today, gw_today = bf16_grads(lambda x: todays_forward(x, lin.weight, bits), x, lin.weight, g)
    # dL/dw = dL/dy^T x: the same bf16 kernel on the same operands as F.linear's backward
    assert gw.dtype == torch.float32 and torch.equal(gw, gw_today)
    # dL/dx = dL/dy (scale * codes): within bf16 rounding of the fp64 product with the exact grid
    q = quantize_rows(lin.weight.detach(), bits).double()
    exact = g.double() @ q
    bound = 2**-7 * (g.double().abs() @ q.abs())  # dL/dy * scale rounded, then the result: 2^-8 each
    assert gx.dtype == torch.float32
    assert ((gx.double() - exact).abs() <= bound).all()
    assert ((gx_today.double() - exact).abs() <= bound).all()  # the same quantity as before


@pytest.mark.parametrize("bits", (8, 1))
def test_a_zero_weight_still_gets_its_gradient(bits):
    # zero-initialised output projections: tiny row scales (ternary: gamma 0) must not scale it away
    lin = layer(64, 32, bits, seed=3)
    torch.nn.init.zeros_(lin.weight)
    gen = torch.Generator().manual_seed(4)
    x, g = torch.randn(5, 64, generator=gen), torch.randn(5, 32, generator=gen).to(BF16)
    y, gx, gw = bf16_grads(lin, x, lin.weight, g)
    assert torch.equal(y, torch.zeros_like(y)) and torch.equal(gx, torch.zeros_like(gx))
    assert torch.equal(gw, (g.T @ x.to(BF16)).float()) and gw.abs().min() > 0


def test_fp16_arm_is_unchanged_under_bf16():
    lin = layer(48, 40, 16, seed=5)
    gen = torch.Generator().manual_seed(6)
    x, g = torch.randn(2, 3, 48, generator=gen), torch.randn(2, 3, 40, generator=gen).to(BF16)
    new = bf16_grads(lin, x, lin.weight, g)
    old = bf16_grads(lambda x: F.linear(x, lin.weight), x, lin.weight, g)
    assert all(torch.equal(a, b) for a, b in zip(new, old))


@pytest.mark.parametrize("bits", (16, *QUANTISED))
@pytest.mark.parametrize("shape", [((5, 8), 4), ((2, 9, 64), 48), ((3, 4, 128), 256)])
def test_fp32_is_bitwise_the_plain_expression(bits, shape):
    (x_shape, n_out), n_in = shape, shape[0][-1]
    lin = layer(n_in, n_out, bits, seed=bits)
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(*x_shape, generator=gen, requires_grad=True)
    g = torch.randn(*x_shape[:-1], n_out, generator=gen)
    results = []
    for forward in (lin, lambda x: todays_forward(x, lin.weight, bits)):
        x.grad = lin.weight.grad = None
        y = forward(x)
        y.backward(g)
        results.append((y, x.grad, lin.weight.grad))
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_compiled_bf16_layer_equals_eager():
    # Inductor compiles for CPU: the graph the GPU compiles (no graph break, fullgraph) keeps the grid
    lin = layer(64, 48, 8, seed=8)
    gen = torch.Generator().manual_seed(9)
    x, g = torch.randn(2, 5, 64, generator=gen), torch.randn(2, 5, 48, generator=gen).to(BF16)
    compiled = torch.compile(lin, backend="inductor", fullgraph=True)
    eager = bf16_grads(lin, x, lin.weight, g)
    assert all(torch.equal(a, b) for a, b in zip(bf16_grads(compiled, x, lin.weight, g), eager))


def test_shape_only_tracing_on_meta_tensors_still_runs():
    # autocast knows no "meta" device: the layer must not ask it about one
    with torch.device("meta"):
        y = QATLinear(8, 4, 8)(torch.zeros(2, 8))
    assert y.shape == (2, 4) and y.dtype == torch.float32
